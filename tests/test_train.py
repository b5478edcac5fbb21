"""Ray Train: the same seed gives the same run, teacher consistency across workers, checkpoints,
a killed worker and a stopped run resumed, node placement.

The smoke run as MLflow shows it: tests/test_train_mlflow.py."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from pipeline import config as C
from pipeline import tracking
from pipeline.engine import checkpoint as ckpt_io
from tests.dmt_helpers import _with

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


# Measurements of the machine, not results: wall-clock figures, and MLflow's system metrics
# (CI once logged a disk-space sample in one run of a pair).
TIMING = ("time/", "system/", "train/samples_per_s", "train/data_wait_frac")


def test_the_same_seed_gives_the_same_run(smoke_base):
    """Same config and seed, the same run: every metric it logs, epoch by epoch, through two
    stage-2 epochs (where the unlabeled Ray Data stream starts): the streams keep their file
    order and the shuffle is seeded and independent of Ray Data's block boundaries."""
    from pipeline.train.driver import fit

    cfg = _with(smoke_base, "train.stage2_epochs=2", "tracking.heatmaps=0")
    first, second = (fit(cfg, say=lambda *_: None) for _ in range(2))
    _assert_same_metrics(first, second)


def _first_ids_in_name_order(cfg: C.Config) -> list[str]:
    shards = C.data_paths(cfg.data).shards
    return [pq.read_table(f, columns=["id"]).column("id")[0].as_py()
            for f in sorted(Path(shards).glob("part-*.parquet"))]


def test_the_same_clips_in_another_folder_give_the_same_run(smoke_base, tmp_path):
    """The same clips preprocessed in another folder train the same run. Shard names hash the
    clips' source paths, so the files sort another way by name there (the copy is chosen so
    that they do); the readers order them by their clips instead."""
    from pipeline.prepare import prepare_dataset
    from pipeline.train.driver import fit

    here = _with(smoke_base, "train.stage2_epochs=2", "tracking.heatmaps=0")
    synth = C.data_paths(here.data).shards.parent / "synth"
    for attempt in range(8):
        root = tmp_path / f"copy{attempt}"
        shutil.copytree(synth, root / "synth")
        there = _with(here, f"data.root={root}")
        prepare_dataset(there, say=lambda *_: None)
        if _first_ids_in_name_order(there) != _first_ids_in_name_order(here):
            break
    else:
        pytest.fail("no copy whose shard names sort differently (8 folders tried)")
    assert len(_first_ids_in_name_order(here)) > 1
    assert sorted(_first_ids_in_name_order(there)) == sorted(_first_ids_in_name_order(here))
    _assert_same_metrics(fit(here, say=lambda *_: None), fit(there, say=lambda *_: None))


def _assert_same_metrics(first, second) -> None:
    """Every metric of two runs but the timings, epoch by epoch, exactly."""
    uri = first.tracking_uri
    keys = sorted(k for k in tracking.get_run(uri, first.run_id).data.metrics
                  if not k.startswith(TIMING))
    assert len(keys) > 80 and "train/kept" in keys and "train/pseudo_iou_all" in keys
    assert keys == sorted(k for k in tracking.get_run(uri, second.run_id).data.metrics
                          if not k.startswith(TIMING))
    for key in keys:
        a = tracking.metric_history(uri, first.run_id, key)
        b = tracking.metric_history(uri, second.run_id, key)
        assert a == b, key  # exactly: steps and values


def test_workers_are_told_the_state_api_of_their_own_ray_instance(ray_session):
    """Train's placement-group cleaner runs in a worker and calls the state API without an
    address; auto-detection fails beside a second Ray instance on the machine, so a local
    instance passes its own dashboard address to every worker."""
    import os

    from ray.util.state import list_nodes

    @ray_session.remote(num_cpus=0)
    def api_address() -> str | None:
        return os.environ.get("RAY_API_SERVER_ADDRESS")

    address = ray_session.get(api_address.remote())
    assert address and address.startswith("http://127.0.0.1:")
    node_ids = {node.node_id for node in list_nodes(address=address)}
    assert ray_session.get_runtime_context().get_node_id() in node_ids


def test_checkpoint_round_trip_restores_step_and_weights(tmp_path):
    from pipeline.dmt.state import make_state

    cfg = C.load(REPO / "jobs/configs/smoke.yaml")
    state = make_state(cfg.model, cfg.dmt, cfg.optim, seed=1)
    state.step, state.stage = 17, 2
    with torch.no_grad():
        next(state.teachers[1].parameters()).add_(0.5)
    ckpt_io.save(tmp_path, state.state_dict(), epoch=4, config=C.to_dict(cfg))
    fresh = make_state(cfg.model, cfg.dmt, cfg.optim, seed=2)
    data = ckpt_io.load(tmp_path)
    fresh.load_state_dict(data["state"])
    assert (fresh.step, fresh.stage, data["epoch"]) == (17, 2, 4)
    for a, b in zip(fresh.teachers[1].parameters(), state.teachers[1].parameters(), strict=True):
        assert torch.equal(a, b)
    assert C.from_dict(data["config"]) == cfg


def test_checkpoint_refuses_foreign_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"format": 1, "state": Evil()}, tmp_path / "state.pt")
    with pytest.raises(ValueError, match="state.pt: not a dmt-avsl checkpoint.*[Ww]eights only"):
        ckpt_io.load(tmp_path)


@pytest.mark.parametrize("content", [b'{"checkpoints": []}', b"PK\x03\x04truncated", b""])
def test_a_file_that_is_no_checkpoint_is_named_with_the_cause(tmp_path, content):
    """Ray Train's checkpoint_manager_snapshot.json, a truncated save, an empty file: a
    ValueError naming the file, not torch's 'Unsupported operand 123'."""
    (tmp_path / "checkpoint_manager_snapshot.json").write_bytes(content)
    with pytest.raises(ValueError, match="checkpoint_manager_snapshot.json: not a dmt-avsl"):
        ckpt_io.load(tmp_path / "checkpoint_manager_snapshot.json")


def _kill_one_worker_after_first_checkpoint(run_folder: Path, killed: list) -> None:
    import os

    from ray.util.state import list_actors

    # the snapshot is written once the controller has registered a checkpoint
    deadline = time.time() + 600
    while time.time() < deadline and not (run_folder / "checkpoint_manager_snapshot.json").exists():
        time.sleep(0.5)
    import ray

    try:  # this session's cluster (other Ray instances may run on the machine)
        workers = list_actors(address=ray.get_runtime_context().gcs_address,
                              filters=[("class_name", "=", "RayTrainWorker"),
                                       ("state", "=", "ALIVE")])
        if workers:
            os.kill(workers[-1].pid, signal.SIGKILL)
            killed.append(workers[-1].pid)
    except Exception as exc:  # noqa: BLE001 - reported by the test's assertion
        killed.append(exc)


def test_two_workers_keep_identical_teachers_and_survive_a_killed_worker(smoke_base):
    """DDP students + per-worker EMA teachers stay identical; a SIGKILLed worker is replaced and
    the run resumes from its last checkpoint instead of starting over."""
    from pipeline.train import driver

    # cpus_per_worker left at auto: 0.5 each on the session's 2 CPUs, one left for Ray Data
    cfg = _with(smoke_base, "train.num_workers=2", "train.stage2_epochs=4",
                "train.max_failures=2")
    killed: list[int] = []
    # the run folder is named after the MLflow run, unknown until fit() starts: watch the parent
    storage = Path(cfg.train.storage)
    before = set(storage.glob("*"))

    def watch():
        deadline = time.time() + 300
        while time.time() < deadline:
            new = [p for p in storage.glob("*") if p not in before and p.is_dir()]
            if new:
                _kill_one_worker_after_first_checkpoint(new[0], killed)
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    outcome = driver.fit(cfg, say=lambda *_: None)
    watcher.join(timeout=5)
    assert killed and isinstance(killed[0], int), f"no worker was killed: {killed}"
    ret = outcome.return_value
    assert ret["world"] == 2 and ret["start_epoch"] >= 1  # resumed, not restarted from 0
    assert ret["step"] == ret["epochs"] * cfg.train.steps_per_epoch
    digests = ret["digests"]
    assert len(digests) == 2 and killed[0] not in [d["pid"] for d in digests]
    assert digests[0]["teachers"] == digests[1]["teachers"]
    assert digests[0]["students"] == digests[1]["students"]
    assert len(set(digests[0]["teachers"])) == 2  # A and B differ from each other
    run = tracking.get_run(outcome.tracking_uri, outcome.run_id)
    assert run.info.status == "FINISHED" and int(run.data.tags["resumed_from_epoch"]) >= 1


def test_resume_a_stopped_run_from_its_folder(smoke_base, tmp_path):
    """`dmt train` stopped after its first checkpoint, then `dmt train --resume FOLDER`."""
    cfg_file = tmp_path / "cfg.yaml"
    cfg = _with(smoke_base, "train.stage2_epochs=2", "train.max_failures=0")
    cfg_file.write_text(C.dump_yaml(cfg))
    storage = Path(cfg.train.storage)
    before = set(storage.glob("*"))
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "train", "--config",
                             str(cfg_file)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 400
        folder = None
        while time.time() < deadline and proc.poll() is None:
            new = [p for p in storage.glob("*") if p not in before and p.is_dir()]
            if new and list(new[0].glob("checkpoint_*")):
                folder = new[0]
                break
            time.sleep(0.5)
        assert folder is not None, "no checkpoint appeared"
    finally:
        proc.send_signal(signal.SIGINT)  # a user's Ctrl-C: the run is marked KILLED
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    resumed = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--resume",
                              str(folder)], cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout
    latest = ckpt_io.load(sorted(p for p in folder.glob("checkpoint_*") if p.is_dir())[-1])
    assert latest["epoch"] + 1 == cfg.train.stage1_epochs + cfg.train.stage2_epochs


def test_data_and_training_workers_go_to_the_labeled_nodes(smoke_base):
    """data.nodes / train.worker_nodes (Ray node labels) place Ray Data's tasks and Train's
    workers: decoding on CPU nodes, training on GPU nodes (cluster/kuberay, cluster/aws.yaml)."""
    from pipeline.train.data import build_datasets
    from pipeline.train.driver import build_trainer

    cfg = _with(smoke_base, "data.nodes=dmt-role=data", "train.worker_nodes=dmt-role=gpu,zone=a")
    trainer = build_trainer(cfg, {}, {}, "labels", Path("/tmp/labels"))
    assert trainer.scaling_config.label_selector == {"dmt-role": "gpu", "zone": "a"}
    options = trainer.data_config._resolve_execution_options("labeled")  # what Train applies
    assert options.label_selector == {"dmt-role": "data"} and options.preserve_order
    import ray.data

    build_datasets(_with(cfg, "data.nodes="), "test")  # the driver's own context follows
    assert ray.data.DataContext.get_current().execution_options.label_selector is None
    with pytest.raises(C.ConfigError, match="data.nodes"):
        C.from_dict(C.to_dict(smoke_base), ["data.nodes=justakey"])
