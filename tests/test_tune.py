"""`dmt tune`: search spaces, resources, and a real smoke sweep with nested MLflow runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline import config as C
from pipeline import tracking
from pipeline.tune import space as S
from pipeline.tune import sweep, trials

REPO = Path(__file__).resolve().parents[1]


def test_default_space_is_valid_and_ema_decay_is_log_spaced_near_one():
    space = S.load_space(None, C.Config())
    assert set(space) == {"dmt.delta", "dmt.tau", "dmt.ema_decay"}
    param_space = S.to_tune(space)
    lo, hi = param_space["1-dmt.ema_decay"].lower, param_space["1-dmt.ema_decay"].upper
    assert (1 - hi, 1 - lo) == pytest.approx((0.9, 0.9999))
    assert S.decode_sample({"1-dmt.ema_decay": 0.01, "dmt.tau": 0.4}) == {
        "dmt.ema_decay": pytest.approx(0.99), "dmt.tau": 0.4}


def test_shipped_spaces_fit_the_configs_they_name():
    """Every space under jobs/spaces/ is valid for the config its first line's command uses."""
    files = sorted((REPO / "jobs" / "spaces").glob("*.yaml"))
    assert files
    for f in files:
        config = f.read_text().split("--config ")[1].split()[0]
        space = S.load_space(str(f), C.load(config))
        assert set(space) == {"dmt.delta", "dmt.tau", "dmt.ema_decay"}, f


def test_space_file_uses_config_keys_and_rejects_bad_ones(tmp_path):
    good = tmp_path / "space.yaml"
    good.write_text(yaml.safe_dump({"optim.lr": {"loguniform": [1e-4, 1e-2]},
                                    "dmt.lambda_u": {"choice": [0.5, 1.0, 2.0]}}))
    assert set(S.load_space(str(good), C.Config())) == {"optim.lr", "dmt.lambda_u"}
    for bad, message in [
        ({"dmt.nope": {"uniform": [0, 1]}}, "unknown key 'dmt.nope'"),
        ({"dmt.tau": {"uniform": [0.2, 1.5]}}, r"dmt\.tau: 1\.5 is out of range"),
        ({"dmt.tau": {"gaussian": [0, 1]}}, "expected one of"),
        ({"dmt.tau": {"uniform": [0.8, 0.2]}}, "low < high"),
        ({"dmt.method": {"choice": ["dmt", "magic"]}}, "'magic' is not one of"),
    ]:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(C.ConfigError, match=message):
            S.load_space(str(path), C.Config())


def test_grace_period_counts_from_stage_2_when_only_dmt_values_are_swept():
    cfg = C.load(None, ["train.stage1_epochs=4", "train.stage2_epochs=6", "tune.grace_period=2"])
    dmt_only = S.load_space(None, cfg)
    assert sweep.grace_epochs(cfg, dmt_only, 10) == 6  # 4 warm-up epochs + 2 of stage 2
    with_lr = {**dmt_only, "optim.lr": {"loguniform": [1e-4, 1e-2]}}
    assert sweep.grace_epochs(cfg, with_lr, 10) == 2  # lr changes stage 1 too
    assert sweep.grace_epochs(cfg, dmt_only, 5) == 5  # never past the last epoch


def test_concurrency_fits_the_cluster():
    from pipeline.train import resources

    cfg = resources.fitted(C.load(None, ["train.num_workers=1"]), 2, sweep=True)
    assert cfg.train.cpus_per_worker == 0.5  # auto: the 2 CPUs less trial 0.5 and Ray Data's 1
    assert sweep.trial_resources(cfg) == 2.0  # trial function + worker + room for Ray Data
    assert sweep.max_concurrent(cfg, 2) == 1
    assert sweep.max_concurrent(cfg, 8) == 4
    assert sweep.max_concurrent(cfg, 1) == 1  # never zero: one trial always runs
    C.set_key(cfg, "tune.max_concurrent", 3)
    assert sweep.max_concurrent(cfg, 2) == 3
    C.set_key(cfg, "train.cpus_per_worker", 1.0)
    with pytest.raises(C.ConfigError, match=r"one trial needs 2.5 CPUs .*cpus_per_worker=0.5"):
        resources.fitted(cfg, 2, sweep=True)


@pytest.mark.slow
def test_smoke_sweep_nests_trials_stops_some_and_round_trips_the_best_config(
        tmp_path, ray_session, monkeypatch):
    from pipeline.train.driver import fit

    root = tmp_path
    monkeypatch.chdir(tmp_path)  # a relative train.storage, as a user's config has
    cfg = C.load(REPO / "jobs/configs/smoke.yaml", [
        f"data.root={root / 'data'}", "train.storage=ray_results",
        f"tracking.uri=sqlite:///{root / 'mlflow.db'}", "train.stage1_epochs=1",
        "train.stage2_epochs=2", "tune.grace_period=1", "tune.reduction_factor=4",
        "tune.objective=val/mean_ciou"])  # resources left at their defaults: they fit 2 CPUs
    out = sweep.run_sweep(cfg, samples=4, say=lambda *_: None, register=("smoke", "champion"))
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    space = S.load_space(None, cfg)

    # parent run with one child per trial
    parent = tracking.get_run(uri, out.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["tune.best_trial"] == out.best_trial
    assert {"best_config.yaml", "objective_per_trial.png", "objective_vs_values.png",
            "trials.json"} <= set(tracking.list_artifacts(uri, out.parent_run_id))
    runs = tracking.search_runs(uri, cfg.name,
                                f"tags.`{tracking.PARENT_TAG}` = '{out.parent_run_id}'")
    children = [r for r in runs if r.info.run_name.startswith("trial-")]
    assert len(children) == 4
    # stage 1 ran once (only stage-2 keys are swept), as the parent's other child; every trial
    # started from it at stage 2
    (warm,) = [r for r in runs if r.info.run_name == f"{out.path.name}-warmup"]
    assert len(runs) == 5 and warm.info.status == "FINISHED"
    assert parent.data.tags["tune.warmup_run_id"] == warm.info.run_id
    assert [s for s, _ in tracking.metric_history(uri, warm.info.run_id, "val/mean_ciou")] == [1]
    for child in children:
        assert child.data.tags["tune.warmup_run_id"] == warm.info.run_id
        steps = [s for s, _ in tracking.metric_history(uri, child.info.run_id, "val/mean_ciou")]
        assert steps and steps[0] == 2, steps
    assert out.epochs_run == 1 + sum(r["epochs"] - 1 for r in out.trials)
    statuses = {c.data.tags["tune.status"] for c in children}
    assert statuses <= {"completed", "stopped_early"}
    assert "stopped_early" in statuses  # ASHA: rung after stage-2 epoch 1 keeps 1 in 4
    for child in children:  # completed trials end by themselves: run closed, model logged
        if child.data.tags["tune.status"] == "completed":
            assert child.info.status == "FINISHED"
            assert "checkpoint" in tracking.list_artifacts(uri, child.info.run_id)
            assert tracking.run_model_id(uri, child.info.run_id)  # the logged model
        else:
            assert child.info.status == "KILLED"
    for child in children:
        assert len(tracking.metric_history(uri, child.info.run_id, "val/mean_ciou")) >= 1

    # the registry's champion is the best completed trial's model
    from mlflow import MlflowClient

    champion = MlflowClient(uri).get_model_version_by_alias("smoke", "champion")
    by_id = {c.info.run_id: c for c in children}
    assert by_id[champion.run_id].data.tags["tune.status"] == "completed"
    done = [r for r in out.trials if r["status"] == "completed"]
    best_done = max(done, key=lambda r: r["objective"])["trial_id"]
    assert by_id[champion.run_id].info.run_name == f"trial-{best_done}"
    assert parent.data.tags["tune.registered"] == out.registered
    assert out.registered.startswith("models:/smoke@champion (version 1")

    # sampled values differ between trials and lie in the space
    values = [row["values"] for row in out.trials]
    for key in space:
        assert len({v[key] for v in values}) == 4
        assert all(S.contains(space, key, v[key]) for v in values)
    assert out.epochs_run < out.epochs_full

    # the best config keeps the given (relative) paths, so it works from the repo anywhere
    assert (tmp_path / "ray_results" / out.path.name).is_dir()
    assert out.best_config.train.storage == "ray_results"
    # the best config runs unchanged through `dmt train --config`
    best_file = tmp_path / "best.yaml"
    best_file.write_text(C.dump_yaml(out.best_config))
    again = C.load(best_file)
    assert again == out.best_config
    for key, value in values[[r["trial_id"] for r in out.trials].index(out.best_trial)].items():
        assert C.flatten(again)[key] == pytest.approx(value)
    outcome = fit(again, say=lambda *_: None)
    assert tracking.get_run(outcome.tracking_uri, outcome.run_id).info.status == "FINISHED"
    # the test split was used for the final report only
    assert "test/ciou" in out.test_metrics


@pytest.mark.slow
def test_optuna_searcher_proposes_the_smoke_sweeps_values(tmp_path, ray_session):
    """tune.search=optuna: TPE (seeded) proposes every trial's values inside the space, the
    sweep and its MLflow runs are as with random search."""
    from ray.tune.search import ConcurrencyLimiter

    cfg = C.load(REPO / "jobs/configs/smoke.yaml", [
        f"data.root={tmp_path / 'data'}", f"train.storage={tmp_path / 'ray_results'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "train.stage1_epochs=1",
        "train.stage2_epochs=1", "tune.scheduler=fifo", "tune.search=optuna",
        "tune.objective=val/mean_ciou", "tracking.heatmaps=0", "tune.optuna_startup=1"])
    searcher = sweep._searcher(cfg, 1)
    assert isinstance(searcher, ConcurrencyLimiter)
    assert type(searcher.searcher).__name__ == "OptunaSearch"
    # TPE proposes from the second trial on: one random start-up trial (optuna_startup)
    assert searcher.searcher._sampler._n_startup_trials == 1
    out = sweep.run_sweep(cfg, samples=2, say=lambda *_: None)
    space = S.load_space(None, cfg)
    assert len(out.trials) == 2 and all(r["status"] == "completed" for r in out.trials)
    for key in space:
        values = [r["values"][key] for r in out.trials]
        assert len(set(values)) == 2 and all(S.contains(space, key, v) for v in values)
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    assert tracking.get_run(uri, out.parent_run_id).data.params["tune.search"] == "optuna"


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


@pytest.mark.slow
@pytest.mark.long  # `make test-long`: 190 s, the suite ran 35.7 min on CI (its 25 min budget)
def test_an_interrupted_sweep_resumes_without_redoing_finished_trials(tmp_path, smoke_base,
                                                                      ray_session):
    """Ctrl-C `dmt tune` during its second trial, then `--resume`: the finished trial is not
    run again, the interrupted one continues its own MLflow run, and the resumed trial logs to
    the resuming invocation's MLflow server (the first one's is gone)."""
    cfg = C.load(REPO / "jobs/configs/smoke.yaml", [
        f"data.root={smoke_base.data.root}", f"train.storage={tmp_path / 'ray_results'}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "train.stage1_epochs=1",
        # 8 stage-2 epochs: Ctrl-C after the 2nd trial's first epoch leaves it epochs to do (a
        # Train run goes on for a few seconds while Tune shuts down, and may finish a short one:
        # 3 epochs of 3 s did, once trials started from the shared warm-up)
        f"train.stage2_epochs={EPOCHS - 1}", "tune.scheduler=fifo", "train.cpus_per_worker=0.5",
        "tune.trial_cpus=0.5", "tune.objective=val/mean_ciou", "tracking.heatmaps=0"])
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

    storage = tmp_path / "ray_results"
    cfg = C.load(REPO / "jobs/configs/smoke.yaml", [
        f"data.root={smoke_base.data.root}", f"train.storage={storage}",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "train.stage1_epochs=1",
        f"train.stage2_epochs={EPOCHS - 1}", "tune.scheduler=fifo", "train.cpus_per_worker=0.5",
        "tune.trial_cpus=0.5", "tune.objective=val/mean_ciou", "tracking.heatmaps=0",
        "tune.max_failures=1"])
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
    # kill (it depends on when Tune last saved it): never an epoch twice, up to the last one
    assert epochs == list(range(epochs[0], EPOCHS + 1)), epochs
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    runs = tracking.search_runs(uri, cfg.name, f"tags.`{tracking.PARENT_TAG}` = "
                                f"'{out.parent_run_id}'")
    trial_runs = [r for r in runs if r.info.run_name.startswith("trial-")]
    assert len(trial_runs) == 1 and trial_runs[0].info.status == "FINISHED"
    # every epoch logged once: the restart resumed from the checkpoint, not from the start
    steps = [s for s, _ in tracking.metric_history(uri, trial_runs[0].info.run_id,
                                                   "val/mean_ciou")]
    assert sorted(steps) == list(range(2, EPOCHS + 1)), steps
