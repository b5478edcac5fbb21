"""Ray Train + MLflow: a smoke run, teacher consistency across workers, checkpoints, faults."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from pipeline import config as C
from pipeline import tracking
from pipeline.engine import checkpoint as ckpt_io

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _with(cfg: C.Config, *overrides: str) -> C.Config:
    out = C.from_dict(C.to_dict(cfg))
    for text in overrides:
        C.set_key(out, *C.parse_override(text))
    return out


@pytest.fixture(scope="module")
def smoke_outcome(smoke_base):
    from pipeline.train.driver import fit

    # system metrics sampled every second: the smoke run trains for about ten
    return fit(_with(smoke_base, "tracking.system_metrics_interval_s=1"), say=lambda *_: None)


def test_smoke_run_is_tracked_in_mlflow(smoke_base, smoke_outcome):
    outcome = smoke_outcome
    uri = outcome.tracking_uri
    run = tracking.get_run(uri, outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["dmt.ema_decay"] == str(smoke_base.dmt.ema_decay)
    assert run.data.params["train.steps_per_epoch"] == "3"
    assert run.data.tags["git_commit"] and "version.ray" in run.data.tags
    assert '"rows": 48' in run.data.tags["dataset"]
    epochs = smoke_base.train.stage1_epochs + smoke_base.train.stage2_epochs
    for key in ("train/loss_total", "train/loss_sup", "test/teacher_mean/ciou",
                "test/teacher_a/ciou_fixed", "test/student_b/mse", "test/whole_image/ciou",
                "test/centre_box/auc", "train/samples_per_s"):
        assert len(tracking.metric_history(uri, outcome.run_id, key)) == epochs, key
    for key in ("train/kept", "train/filtered", "train/consensus_iou"):  # stage 2 only
        assert len(tracking.metric_history(uri, outcome.run_id, key)) == \
            smoke_base.train.stage2_epochs, key
    # stage 2 reports the pseudo-label quality against the synthetic truth
    assert tracking.metric_history(uri, outcome.run_id, "train/pseudo_iou_all")[-1][1] >= 0
    artifacts = tracking.list_artifacts(uri, outcome.run_id)
    assert "config.yaml" in artifacts and "checkpoint" in artifacts
    assert tracking.list_artifacts(uri, outcome.run_id, "checkpoint") == ["checkpoint/state.pt"]
    # where the input time went: Ray Data's timings of both training streams
    stats = Path(tracking.download_artifacts(
        uri, f"runs:/{outcome.run_id}/ray_data_stats.txt")).read_text()
    assert "== labeled stream" in stats and "== unlabeled stream" in stats
    assert "no stats" not in stats and "Operator" in stats
    heatmaps = tracking.list_artifacts(uri, outcome.run_id, "heatmaps")
    assert heatmaps == [f"heatmaps/epoch_{e:03d}.png" for e in range(1, epochs + 1)]
    # the final model loads safely and evaluates through the Ray-free path
    data = ckpt_io.load(outcome.checkpoint_path)
    assert data["epoch"] == epochs - 1 and data["state"]["stage"] == 2
    assert data["state"]["step"] == epochs * smoke_base.train.steps_per_epoch
    from pipeline.checkpoint_uri import evaluate_checkpoint

    shards = C.data_paths(smoke_base.data).shards
    result = evaluate_checkpoint(outcome.checkpoint_path, shards)
    logged = outcome.metrics["test/teacher_mean/ciou"]
    assert result["metrics"]["test/teacher_mean/ciou"] == pytest.approx(logged)
    # the run's MLflow model holds the same final checkpoint: evaluated through its URI
    model_id = tracking.run_model_id(uri, outcome.run_id)
    by_uri = evaluate_checkpoint(f"runs:/{outcome.run_id}/model", shards, tracking_uri=uri)
    assert by_uri["checkpoint"] == f"runs:/{outcome.run_id}/model"
    assert by_uri["metrics"] == result["metrics"]
    assert tracking.get_run(uri, outcome.run_id).outputs.model_outputs[0].model_id == model_id


def test_smoke_run_shows_its_data_system_metrics_and_heatmaps_in_mlflow(smoke_base,
                                                                       smoke_outcome):
    """What MLflow's UI reads: dataset inputs, system metrics, images by step, the source."""
    from mlflow.tracking import MlflowClient

    uri, run_id = smoke_outcome.tracking_uri, smoke_outcome.run_id
    run = tracking.get_run(uri, run_id)
    inputs = {d.dataset.name.rsplit("/", 1)[-1]: d for d in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["labeled", "test", "unlabeled"]
    summary = json.loads((C.data_paths(smoke_base.data).shards / "summary.json").read_text())
    for split, item in inputs.items():
        profile = json.loads(item.dataset.profile)
        assert profile["rows"] == summary["splits"][split]["rows"] > 0
        assert profile["schema_version"] == summary["schema_version"]
        assert json.loads(item.dataset.source)["uri"] == str(C.data_paths(
            smoke_base.data).shards)
        context = {t.key: t.value for t in item.tags}["mlflow.data.context"]
        assert context == ("evaluation" if split == "test" else "training")
    digests = {json.loads(d.dataset.profile)["summary_digest"] for d in inputs.values()}
    assert len(digests) == 1  # one summary.json, one digest
    system = [k for k in run.data.metrics if k.startswith("system/")]
    assert "system/cpu_utilization_percentage" in system
    assert "system/system_memory_usage_megabytes" in system
    epochs = smoke_base.train.stage1_epochs + smoke_base.train.stage2_epochs
    images = tracking.list_artifacts(uri, run_id, "images")
    steps = sorted({int(p.split("+step+")[1].split("+")[0]) for p in images if "+step+" in p})
    assert steps == list(range(1, epochs + 1)), images  # the UI's step slider
    assert run.data.tags["mlflow.source.type"] == "LOCAL"
    assert run.data.tags["mlflow.source.name"] and "smoke" in run.data.tags["mlflow.note.content"]
    exp = MlflowClient(uri).get_experiment(run.info.experiment_id)
    link = tracking.run_url(uri, run_id, exp.experiment_id)
    assert link.endswith(f"/runs/{run_id}?workflowType=machine_learning")


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
