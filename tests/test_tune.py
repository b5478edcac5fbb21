"""`dmt tune`: search spaces, resources, and a real smoke sweep with nested MLflow runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline import config as C
from pipeline import tracking
from pipeline.tune import space as S
from pipeline.tune import sweep

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
