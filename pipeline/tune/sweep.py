"""A Ray Tune sweep whose trials are full DMT training runs (Train V2 inside a Tune function).

Each trial builds and fits a ``TorchTrainer`` (``pipeline.train.driver.fit``); Train's per-epoch
reports reach Tune through ``TuneReportCallback`` so ASHA sees every validation score. The Train
run is named after the trial id, so a restarted trial resumes its own run. MLflow: one parent
run for the sweep, one child run per trial (tag ``mlflow.parentRunId``), written through a local
``mlflow server`` when the store is a SQLite file.
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import config as config_mod
from pipeline.tune import space as space_mod

SWEEP_INFO = "dmt_sweep.json"


@dataclass
class SweepOutcome:
    parent_run_id: str
    best_trial: str
    best_config: config_mod.Config
    best_value: float
    trials: list[dict[str, Any]]
    test_metrics: dict[str, float]
    epochs_run: int
    epochs_full: int
    path: Path


DATA_HEADROOM_CPUS = 1.0


def trial_resources(cfg: config_mod.Config) -> float:
    """CPUs one trial needs: its driver function, its Train workers, and free room for data.

    Ray Data inside a Train run inside a Tune trial only schedules when about one CPU is left
    free beside the trial and its workers (measured on a 2-CPU machine with Ray 2.60: trial 0.5
    + worker 0.5 trains; trial 0.25 + worker 1.0 starves the loop forever with "Cluster
    resources are not enough to run any task"), so that room counts as part of each trial.
    """
    return cfg.tune.trial_cpus + cfg.train.num_workers * cfg.train.cpus_per_worker \
        + DATA_HEADROOM_CPUS


def check_fits(cfg: config_mod.Config, cluster_cpus: float) -> None:
    """Refuse, before any trial starts, a sweep whose single trial cannot run on the cluster."""
    need = trial_resources(cfg)
    if need > cluster_cpus + 1e-9:
        raise config_mod.ConfigError(
            f"train.cpus_per_worker / train.num_workers / tune.trial_cpus: one trial needs "
            f"{need:g} CPUs (trial {cfg.tune.trial_cpus:g} + {cfg.train.num_workers} x "
            f"{cfg.train.cpus_per_worker:g} per worker + {DATA_HEADROOM_CPUS:g} free for Ray "
            f"Data) but the cluster has {cluster_cpus:g}; e.g. --set train.cpus_per_worker=0.5 "
            f"--set tune.trial_cpus=0.5 on a 2-CPU machine")


def max_concurrent(cfg: config_mod.Config, cluster_cpus: float) -> int:
    """Trials that fit the cluster at once (never 0: one trial always runs)."""
    if cfg.tune.max_concurrent:
        return cfg.tune.max_concurrent
    return max(1, math.floor(cluster_cpus / trial_resources(cfg) + 1e-9))


def run_trial(params: dict[str, Any], base: dict[str, Any]) -> None:
    """The Tune trainable: one DMT run with the sampled values, selected on the val split.

    ``base`` (the config, tracking URI and parent run id) comes through ``tune.with_parameters``
    so that it stays out of the trial's sampled config (and Tune's trial tables)."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from pipeline.train.driver import RUN_INFO, fit, storage_dir
    from pipeline.train.loop import total_epochs

    cfg = config_mod.from_dict(base["config"])
    for key, value in space_mod.decode_sample(params).items():
        config_mod.set_key(cfg, key, value)
    cfg.tracking.uri = base["tracking_uri"]
    trial_id = tune.get_context().get_trial_id()
    name = f"trial-{trial_id}"
    run_path = storage_dir(cfg) / name
    resume = str(run_path) if (run_path / RUN_INFO).is_file() else None
    epochs_before = _epochs_checkpointed(run_path) if resume else 0
    outcome = fit(cfg, resume=resume, parent_run_id=base["parent_run_id"], run_name=name,
                  callbacks=[TuneReportCallback()], eval_split="val",
                  resume_uri=base["tracking_uri"], say=lambda *_: None)
    if epochs_before >= total_epochs(cfg):
        # The Train run had finished all its epochs while Tune was shutting down after Ctrl-C,
        # before Tune recorded the last reports: this resume ran no epoch and reported nothing.
        tune.report({**outcome.metrics, "checkpoint_path": str(outcome.checkpoint_path)})


def _epochs_checkpointed(run_path: Path) -> int:
    """Epochs a Train run folder holds a checkpoint for (0 before its first checkpoint)."""
    import ray.train

    try:
        return int(ray.train.Result.from_path(str(run_path)).metrics.get("epoch", 0))
    except RuntimeError:  # no checkpoint written yet
        return 0


def grace_epochs(cfg: config_mod.Config, space: dict[str, Any], max_t: int) -> int:
    """ASHA's grace period in reported epochs. When every swept key is a ``dmt.*`` key, stage 1
    (the warm-up, which none of them touches) is identical in every trial, so its epochs do not
    count: ``tune.grace_period`` stage-2 epochs must pass before a trial can be stopped (comparing
    trials inside stage 1 would stop them on noise)."""
    only_dmt = bool(space) and all(key.startswith("dmt.") for key in space)
    offset = cfg.train.stage1_epochs if only_dmt and cfg.dmt.method != "ezvsl" else 0
    return min(offset + cfg.tune.grace_period, max_t)


def _scheduler(cfg: config_mod.Config, space: dict[str, Any], max_t: int):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if cfg.tune.scheduler == "fifo":
        return FIFOScheduler()
    # "epoch", not Tune's training_iteration: a trial resumed from its Train checkpoint starts
    # counting reports again from 1, and would be compared with other trials at the wrong rung
    # max_t + 1: at max_t ASHA stops a trial, which kills it before its run is closed and its
    # model logged; one past the last epoch, a trial that gets there ends by itself
    return ASHAScheduler(time_attr="epoch", max_t=max_t + 1,
                         grace_period=grace_epochs(cfg, space, max_t),
                         reduction_factor=cfg.tune.reduction_factor)


def _sweep_folder(cfg: config_mod.Config, resume: bool) -> tuple[Path, dict[str, Any] | None]:
    """A new sweep gets ``sweep-<name>-<n>``; ``--resume`` takes the newest existing one."""
    from pipeline.train.driver import storage_dir

    storage = storage_dir(cfg)
    existing = sorted(storage.glob(f"sweep-{cfg.name}-*"), key=lambda p: p.stat().st_mtime)
    if resume:
        for folder in reversed(existing):
            if (folder / SWEEP_INFO).is_file():
                return folder, json.loads((folder / SWEEP_INFO).read_text())
        raise FileNotFoundError(f"--resume: no sweep of {cfg.name!r} under {storage}")
    return storage / f"sweep-{cfg.name}-{len(existing) + 1}", None


def _trial_rows(results, cfg: config_mod.Config, max_t: int) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        params = dict(result.config or {})
        history = []
        if result.metrics_dataframe is not None and cfg.tune.objective in \
                result.metrics_dataframe:
            frame = result.metrics_dataframe
            history = [(int(i), float(v)) for i, v in
                       zip(frame["epoch"], frame[cfg.tune.objective], strict=True)]
        metrics = result.metrics or {}
        epochs = int(metrics.get("epoch", len(history)))  # see _scheduler
        # Tune marks a result done when the scheduler stops the trial (kept when a sweep is
        # restored); a trial cut short by Ctrl-C is not done, and --resume continues it
        if result.error:
            status = "error"
        elif epochs >= max_t:
            status = "completed"
        else:
            status = "stopped_early" if metrics.get("done") else "unfinished"
        rows.append({"trial_id": metrics.get("trial_id", Path(result.path).name),
                     "values": space_mod.decode_sample(params), "epochs": epochs,
                     "status": status, "history": history,
                     "objective": max((v for _, v in history), default=float("nan"))
                     if cfg.tune.mode == "max" else min((v for _, v in history),
                                                        default=float("nan")),
                     "checkpoint": metrics.get("checkpoint_path")})
    return rows


def _close_children(uri: str, experiment: str, parent_id: str, rows: list[dict]) -> None:
    """Give each child run its sweep status (ASHA kills a stopped trial mid-run)."""
    from pipeline import tracking

    children = {r.info.run_name: r for r in tracking.search_runs(
        uri, experiment, f"tags.`{tracking.PARENT_TAG}` = '{parent_id}'", max_results=1000)}
    for row in rows:
        run = children.get(f"trial-{row['trial_id']}")
        if run is None:
            continue
        log = tracking.RunLogger(uri, run.info.run_id)
        log.set_tags({"tune.status": row["status"], "tune.trial_id": row["trial_id"],
                      "tune.epochs": row["epochs"]})
        final = {"completed": "FINISHED", "stopped_early": "KILLED", "error": "FAILED"}
        # a trial stopped while it was closing its run may have marked it FAILED
        if row["status"] in final and run.info.status != final[row["status"]]:
            log.end(final[row["status"]])  # "unfinished" runs stay open for --resume


class SweepInterrupted(RuntimeError):
    """The sweep stopped before every trial ran (Ctrl-C); ``dmt tune --resume`` continues it."""


def _interrupted(uri: str, experiment: str, parent_id: str, rows: list[dict], samples: int,
                 folder: Path) -> None:
    """Close the ended trials' runs (unfinished ones stay open), mark the parent, and raise."""
    from pipeline import tracking

    _close_children(uri, experiment, parent_id, rows)
    tracking.RunLogger(uri, parent_id).set_tags({"tune.status": "interrupted"})
    ended = sum(row["status"] != "unfinished" for row in rows)
    raise SweepInterrupted(f"sweep interrupted with {ended} of {samples} trials ended and "
                           f"{len(rows) - ended} cut short ({folder}); continue it with the "
                           f"same command and --resume")


def _log_parent_summary(log, cfg, rows, best_row, best_cfg, test_metrics, max_t) -> None:
    from pipeline.tune import plots

    epochs_run = sum(r["epochs"] for r in rows)
    epochs_full = len(rows) * max_t
    log.log_metrics({"tune/best_objective": best_row["objective"],
                     "tune/epochs_run": epochs_run, "tune/epochs_full": epochs_full,
                     "tune/compute_saved_frac": 1 - epochs_run / max(epochs_full, 1),
                     "tune/stopped_early": sum(r["status"] == "stopped_early" for r in rows),
                     **{f"best/{k}": float(v) for k, v in best_row["values"].items()},
                     **test_metrics}, step=0)
    log.set_tags({"tune.best_trial": best_row["trial_id"]})
    log.log_text(config_mod.dump_yaml(best_cfg), "best_config.yaml")
    log.log_dict({"trials": rows}, "trials.json")
    log.log_png(plots.objective_curves_png(rows, cfg.tune.objective), "objective_per_trial.png")
    log.log_png(plots.objective_vs_values_png(rows, cfg.tune.objective),
                "objective_vs_values.png")


def run_sweep(cfg: config_mod.Config, samples: int, space_file: str | None = None,
              resume: bool = False, say=print) -> SweepOutcome:
    """Run (or resume) a sweep; return the best trial and its test-split evaluation."""
    import ray
    from ray import tune

    from pipeline import tracking
    from pipeline.train.driver import ensure_dataset, ensure_ray, storage_dir, validation_ids
    from pipeline.train.loop import total_epochs
    from pipeline.train.offline import evaluate_checkpoint

    given = cfg  # paths as the user wrote them (resolve_paths returns a copy)
    cfg = config_mod.resolve_paths(cfg)  # trials run in their own directories
    config_mod.set_key(cfg, "train.eval_every", 1)  # ASHA needs the objective every epoch
    folder, info = _sweep_folder(cfg, resume)
    if info:
        cfg = config_mod.from_dict(info["config"])
        given = config_mod.from_dict(info.get("given_config", info["config"]))
        space = space_mod.validate_space(info["space"], cfg)
    else:
        space = space_mod.load_space(space_file, cfg)  # None: the default space
    ensure_ray()
    cluster_cpus = ray.cluster_resources().get("CPU", 1)
    check_fits(cfg, cluster_cpus)  # before any data, MLflow or trial work
    ensure_dataset(cfg, say)
    if not validation_ids(cfg):
        raise config_mod.ConfigError("data.val_fraction: the validation split is empty")
    max_t = total_epochs(cfg)
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    experiment = cfg.tracking.experiment or cfg.name
    server = tracking.LocalServer(uri) if uri.startswith("sqlite:") else nullcontext(uri)
    with server as live_uri:
        if info:
            parent = info["parent_run_id"]
        else:
            parent = tracking.start_run(
                live_uri, experiment, folder.name, config_mod.flatten(cfg),
                tracking.reproducibility_tags({"tune.space": space, "tune.samples": samples}))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / SWEEP_INFO).write_text(json.dumps({
                "parent_run_id": parent, "config": config_mod.to_dict(cfg),
                "given_config": config_mod.to_dict(given), "space": space,
                "samples": samples}, indent=1))
        n_conc = max_concurrent(cfg, cluster_cpus)
        say(f"[tune] {samples} trials, {n_conc} at a time, {max_t} epochs each, "
            f"scheduler {cfg.tune.scheduler}; parent MLflow run {parent}")
        base = {"config": config_mod.to_dict(cfg), "tracking_uri": live_uri,
                "parent_run_id": parent}
        trainable = tune.with_resources(tune.with_parameters(run_trial, base=base),
                                        {"cpu": cfg.tune.trial_cpus})
        if info:
            tuner = tune.Tuner.restore(str(folder), trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            from ray.tune.search.basic_variant import BasicVariantGenerator

            tuner = tune.Tuner(
                trainable, param_space=space_mod.to_tune(space),
                tune_config=tune.TuneConfig(
                    metric=cfg.tune.objective, mode=cfg.tune.mode, num_samples=samples,
                    # saved with the sweep, so a --resume that restores several unfinished
                    # trials still runs them n_conc at a time (the searcher's limit does not
                    # apply to restored trials)
                    max_concurrent_trials=n_conc,
                    scheduler=_scheduler(cfg, space, max_t),
                    search_alg=BasicVariantGenerator(random_state=cfg.tune.seed,
                                                     max_concurrent=n_conc)),
                run_config=tune.RunConfig(name=folder.name, storage_path=str(storage_dir(cfg))))
        results = tuner.fit()
        rows = _trial_rows(results, cfg, max_t)
        # Ctrl-C: Tune saved its state and returned early (maybe during the last trial)
        if len(rows) < samples or any(row["status"] == "unfinished" for row in rows):
            _interrupted(live_uri, experiment, parent, rows, samples, folder)
        _close_children(live_uri, experiment, parent, rows)
        scored = [r for r in rows if r["history"]]
        if not scored:
            raise RuntimeError(f"no trial reported {cfg.tune.objective}; see {folder}")
        pick = max if cfg.tune.mode == "max" else min
        best_row = pick(scored, key=lambda r: r["objective"])
        # the config as given (its relative paths stay relative, so --best-out works from the
        # repo on any machine or cluster), with the best trial's values
        best_cfg = config_mod.from_dict(config_mod.to_dict(given))
        for key, value in best_row["values"].items():
            config_mod.set_key(best_cfg, key, value)
        test_metrics = {}
        if best_row["checkpoint"]:
            shards = config_mod.data_paths(cfg.data).shards
            test_metrics = evaluate_checkpoint(best_row["checkpoint"], shards, "test")["metrics"]
        log = tracking.RunLogger(live_uri, parent)
        _log_parent_summary(log, cfg, rows, best_row, best_cfg, test_metrics, max_t)
        log.end("FINISHED")
    return SweepOutcome(parent, best_row["trial_id"], best_cfg, best_row["objective"], rows,
                        test_metrics, sum(r["epochs"] for r in rows), len(rows) * max_t, folder)
