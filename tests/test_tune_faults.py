"""`dmt tune` under faults: Ctrl-C and --resume, and a trial whose process dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import config as C
from pipeline import tracking
from pipeline.tune import sweep, trials

REPO = Path(__file__).resolve().parents[1]


def test_a_trial_cut_short_by_ctrl_c_is_unfinished_not_stopped_early():
    """Tune marks the last result done when ASHA stops a trial; Ctrl-C does not."""

    class Result:
        def __init__(self, epochs, done, error=None):
            self.config = {"dmt.tau": 0.4}
            self.metrics = {"epoch": epochs, "done": done, "trial_id": f"t{epochs}",
                            "val/ciou": 0.5}
            self.metrics_dataframe = None
            self.error, self.path = error, f"/x/t{epochs}"

    cfg = C.load(None, ["tune.objective=val/ciou"])
    rows = trials.trial_rows([Result(4, True), Result(4, False), Result(2, True),
                              Result(1, False), Result(3, False, error=RuntimeError("boom"))],
                             cfg, max_t=4)
    # a finished trial restored from a saved sweep may have lost its done flag
    assert [r["status"] for r in rows] == ["completed", "completed", "stopped_early",
                                           "unfinished", "error"]


def test_an_interrupted_sweep_is_not_reported_as_finished(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent = tracking.start_run(uri, "sweep", "sweep-1", {})
    rows = [{"trial_id": "t0", "status": "completed", "epochs": 4},
            {"trial_id": "t1", "status": "unfinished", "epochs": 2}]
    with pytest.raises(sweep.SweepInterrupted, match="1 of 6 trials ended and 1 cut short.*"
                       "--resume"):
        sweep._interrupted(uri, "sweep", parent, rows, 6, tmp_path)
    assert tracking.get_run(uri, parent).data.tags["tune.status"] == "interrupted"


def _tune_results(folder: Path) -> list[list[dict]]:
    """Per trial folder of a sweep (in trial order), the epoch reports Tune has written."""
    out = []
    for trial in sorted(folder.glob("run_trial_*")):
        path = trial / "result.json"
        lines = path.read_text().splitlines() if path.is_file() else []
        out.append([json.loads(line) for line in lines if line.strip()])
    return out


EPOCHS = 9  # of each trial in the interrupted sweep: 1 shared warm-up epoch and 8 of stage 2


def _smoke_sweep(tmp_path: Path, smoke_base, *extra: str) -> C.Config:
    """The smoke config for a sweep of ``EPOCHS``-epoch trials, one at a time, under
    ``tmp_path``. 8 stage-2 epochs: Ctrl-C after the 2nd trial's first epoch leaves it epochs
    to do (a Train run goes on for a few seconds while Tune shuts down, and may finish a short
    one: 3 epochs of 3 s did, once trials started from the shared warm-up)."""
    return C.load(REPO / "jobs/configs/smoke.yaml", [
        f"data.root={smoke_base.data.root}", f"train.storage={tmp_path / 'ray_results'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "train.stage1_epochs=1",
        f"train.stage2_epochs={EPOCHS - 1}", "tune.scheduler=fifo", "train.cpus_per_worker=0.5",
        "tune.trial_cpus=0.5", "tune.objective=val/mean_ciou", "tracking.heatmaps=0", *extra])


@pytest.mark.slow
@pytest.mark.long  # `make test-long`: 190 s, the suite ran 35.7 min on CI (its 25 min budget)
def test_an_interrupted_sweep_resumes_without_redoing_finished_trials(tmp_path, smoke_base,
                                                                      ray_session):
    """Ctrl-C `dmt tune` during its second trial, then `--resume`: the finished trial is not
    run again, the interrupted one continues its own MLflow run, and the resumed trial logs to
    the resuming invocation's MLflow server (the first one's is gone)."""
    cfg = _smoke_sweep(tmp_path, smoke_base)
    config_file = tmp_path / "sweep.yaml"
    config_file.write_text(C.dump_yaml(cfg))
    # the CLI joins this session's Ray instance: a second local instance on one machine breaks
    # Train's placement-group cleanup
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address,
           "RAY_AUTH_MODE": "token"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "tune", "--config",
                             str(config_file), "--samples", "2"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    folder = tmp_path / "ray_results" / "sweep-smoke-1"
    deadline = time.monotonic() + 600
    while not (folder.is_dir() and len([r for r in _tune_results(folder) if r]) == 2):
        assert proc.poll() is None, f"dmt tune ended before trial 2 reported:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "trial 2 never reported an epoch"
        time.sleep(1)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, output
    assert "--resume" in output
    before = _tune_results(folder)
    # trials start at stage 2 from the shared warm-up (epoch 1, run before them)
    assert [r["epoch"] for r in before[0]] == list(range(2, EPOCHS + 1)), before
    assert before[1][-1]["epoch"] < EPOCHS, before

    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    parent_id = json.loads((folder / sweep.SWEEP_INFO).read_text())["parent_run_id"]
    assert tracking.get_run(uri, parent_id).data.tags["tune.status"] == "interrupted"

    def children():
        runs = tracking.search_runs(uri, cfg.name, f"tags.`{tracking.PARENT_TAG}` = '{parent_id}'")
        return {run.info.run_name: run for run in runs}

    first = children()
    assert len(first) == 3 and f"{folder.name}-warmup" in first  # 2 trials and the warm-up
    warm_id = json.loads((folder / sweep.SWEEP_INFO).read_text())["warmup"]["run_id"]
    finished_run = first[f"trial-{before[0][0]['trial_id']}"]
    finished_history = tracking.metric_history(uri, finished_run.info.run_id, "val/mean_ciou")

    out = sweep.run_sweep(cfg, samples=2, resume=True, say=lambda *_: None)

    assert out.parent_run_id == parent_id
    assert tracking.get_run(uri, parent_id).info.status == "FINISHED"
    after = _tune_results(folder)
    assert after[0] == before[0]  # the finished trial did not run again
    # resumed from its last Train checkpoint: Tune counts its reports from 1 again, the epochs
    # carry on (and ASHA's rungs are counted in epochs)
    assert after[1][:len(before[1])] == before[1] and after[1][-1]["epoch"] == EPOCHS
    assert sorted(row["status"] for row in out.trials) == ["completed", "completed"]
    second = children()
    assert set(second) == set(first)  # the resumed trial continued its own run
    assert second[f"{folder.name}-warmup"].info.run_id == warm_id  # not warmed up again
    assert tracking.metric_history(uri, finished_run.info.run_id, "val/mean_ciou") \
        == finished_history
    resumed = second[f"trial-{before[1][0]['trial_id']}"]
    assert resumed.info.status == "FINISHED"
    assert "checkpoint" in tracking.list_artifacts(uri, resumed.info.run_id)
    assert tracking.run_model_id(uri, resumed.info.run_id)
    steps = [step for step, _ in tracking.metric_history(uri, resumed.info.run_id, "val/mean_ciou")]
    # the epochs after the interrupt reached MLflow
    assert sorted(set(steps)) == list(range(2, EPOCHS + 1)), steps


def _kill_trial_after_its_first_checkpoint(storage: Path, killed: list) -> None:
    """SIGKILL the trial's driver (Tune's function actor, which owns its Train run) once the
    trial's Train run has checkpointed an epoch: the fault a lost node or an OOM kill makes."""
    import ray
    from ray.util.state import list_actors

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not list(
            storage.glob("trial-*/checkpoint_manager_snapshot.json")):
        time.sleep(0.5)
    try:  # this session's cluster (other Ray instances may run on the machine)
        actors = list_actors(address=ray.get_runtime_context().gcs_address,
                             filters=[("class_name", "=", "ImplicitFunc"), ("state", "=", "ALIVE")])
        os.kill(actors[0].pid, signal.SIGKILL)
        killed.append(actors[0].pid)
    except Exception as exc:  # noqa: BLE001 - reported by the test's assertion
        killed.append(exc)


@pytest.mark.slow
@pytest.mark.long  # `make test-long`
def test_a_trial_whose_process_dies_is_restarted_from_its_checkpoint(tmp_path, smoke_base,
                                                                     ray_session):
    """A trial's driver killed mid-run (a lost node, an OOM kill) is restarted by Tune
    (``tune.max_failures``) and resumes its Train run from the last checkpoint: the sweep ends
    with the trial completed, in its own MLflow run, not as an error."""
    import threading

    cfg = _smoke_sweep(tmp_path, smoke_base, "tune.max_failures=1")
    storage = Path(cfg.train.storage)
    killed: list = []
    watcher = threading.Thread(target=_kill_trial_after_its_first_checkpoint,
                               args=(storage, killed), daemon=True)
    watcher.start()
    out = sweep.run_sweep(cfg, samples=1, say=lambda *_: None)
    watcher.join(timeout=5)
    assert killed and isinstance(killed[0], int), killed
    [row] = out.trials
    assert row["status"] == "completed" and row["epochs"] == EPOCHS, row
    [reports] = _tune_results(storage / "sweep-smoke-1")
    epochs = [r["epoch"] for r in reports]
    # Tune's file holds the restarted attempt's reports, with or without the ones before the
    # kill (it depends on when Tune last saved it). The restart went on from the checkpoint:
    # epochs never go back, and only the epoch in flight at the kill may come twice (reported,
    # not yet checkpointed: docs/reliability.md, known gaps); from scratch would repeat them all
    assert epochs == sorted(epochs) and epochs[-1] == EPOCHS, epochs
    assert set(epochs) == set(range(epochs[0], EPOCHS + 1)), epochs
    assert len(epochs) - len(set(epochs)) <= 1, epochs
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    runs = tracking.search_runs(uri, cfg.name, f"tags.`{tracking.PARENT_TAG}` = "
                                f"'{out.parent_run_id}'")
    trial_runs = [r for r in runs if r.info.run_name.startswith("trial-")]
    assert len(trial_runs) == 1 and trial_runs[0].info.status == "FINISHED"
    # every epoch logged, at most the one in flight twice: resumed, not started over
    steps = [s for s, _ in tracking.metric_history(uri, trial_runs[0].info.run_id,
                                                   "val/mean_ciou")]
    assert set(steps) == set(range(2, EPOCHS + 1)) and len(steps) <= EPOCHS, steps
