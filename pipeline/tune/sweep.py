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

import ray
from optuna.samplers import TPESampler
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from pipeline import config as config_mod
from pipeline import tracking
from pipeline.checkpoint_uri import evaluate_checkpoint
from pipeline.engine.loop import total_epochs
from pipeline.locks import FolderLock
from pipeline.prepare import prepare_dataset
from pipeline.ray_env import ensure_ray
from pipeline.train import placement, resources
from pipeline.train.data import validation_ids
from pipeline.tune import plots, warmup
from pipeline.tune import space as space_mod
from pipeline.tune.trials import close_children, register_best, run_trial, trial_rows

SWEEP_INFO = "dmt_sweep.json"
SWEEP_LOCK = ".dmt.lock"  # held in the sweep folder while a process runs the sweep


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
    registered: str = ""  # "models:/<name>@<alias> (version n, trial t)" with --register


def trial_resources(cfg: config_mod.Config) -> float:
    """CPUs one trial holds: its driver function, its Train workers and the room Ray Data's
    stream needs beside them (``pipeline.train.resources``); ``cfg`` as fitted."""
    return resources.run_cpus(cfg, cfg.train.cpus_per_worker, cfg.tune.trial_cpus)


def max_concurrent(cfg: config_mod.Config, cluster_cpus: float) -> int:
    """Trials that fit the cluster at once (never 0: one trial always runs); ``cfg`` as fitted."""
    if cfg.tune.max_concurrent:
        return cfg.tune.max_concurrent
    return max(1, math.floor(cluster_cpus / trial_resources(cfg) + 1e-9))


def grace_epochs(cfg: config_mod.Config, space: dict[str, Any], max_t: int) -> int:
    """ASHA's grace period in reported epochs. When every swept key acts only in stage 2
    (``warmup.STAGE2_ONLY_KEYS``), stage 1 is identical in every trial, so its epochs do not
    count: ``tune.grace_period`` stage-2 epochs must pass before a trial can be stopped (comparing
    trials inside stage 1 would stop them on noise). A method without a warm-up (EZ-VSL) is in
    stage 2 from its first epoch."""
    offset = cfg.train.stage1_epochs if warmup.stage1_is_common(cfg, space) else 0
    return min(offset + cfg.tune.grace_period, max_t)


def epochs_trained(rows: list[dict], shared_stage1: int) -> int:
    """Epochs the sweep trained: each trial's, less a shared warm-up's, which ran once."""
    return sum(r["epochs"] - shared_stage1 for r in rows) + (shared_stage1 if rows else 0)


def _scheduler(cfg: config_mod.Config, space: dict[str, Any], max_t: int):
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
    storage = config_mod.storage_dir(cfg)
    existing = sorted(storage.glob(f"sweep-{cfg.name}-*"), key=lambda p: p.stat().st_mtime)
    if resume:
        for folder in reversed(existing):
            if (folder / SWEEP_INFO).is_file():
                return folder, json.loads((folder / SWEEP_INFO).read_text())
        raise FileNotFoundError(f"--resume: no sweep of {cfg.name!r} under {storage}")
    return storage / f"sweep-{cfg.name}-{len(existing) + 1}", None


class SweepInterrupted(RuntimeError):
    """The sweep stopped before every trial ran (Ctrl-C); ``dmt tune --resume`` continues it."""


def _interrupted(uri: str, experiment: str, parent_id: str, rows: list[dict], samples: int,
                 folder: Path) -> None:
    """Close the ended trials' runs (unfinished ones stay open), mark the parent, and raise."""
    close_children(uri, experiment, parent_id, rows)
    tracking.RunLogger(uri, parent_id).set_tags({"tune.status": "interrupted"})
    ended = sum(row["status"] != "unfinished" for row in rows)
    raise SweepInterrupted(f"sweep interrupted with {ended} of {samples} trials ended and "
                           f"{len(rows) - ended} cut short ({folder}); continue it with the "
                           f"same command and --resume")


def _log_parent_summary(log, cfg, rows, best_row, best_cfg, test_metrics, max_t,
                        epochs_run) -> None:
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


@dataclass
class _Sweep:
    """A sweep being run: its folder, saved info (resume), configs, space and size."""

    folder: Path
    info: dict[str, Any] | None
    cfg: config_mod.Config  # resolved (absolute paths), what the trials run
    given: config_mod.Config  # as the user wrote it (relative paths stay relative)
    space: dict[str, Any]
    samples: int
    max_t: int = 0


def _load_sweep(cfg: config_mod.Config, samples: int, space_file: str | None,
                resume: bool) -> _Sweep:
    given = cfg  # paths as the user wrote them (resolve_paths returns a copy)
    cfg = config_mod.resolve_paths(cfg)  # trials run in their own directories
    config_mod.set_key(cfg, "train.eval_every", 1)  # ASHA needs the objective every epoch
    folder, info = _sweep_folder(cfg, resume)
    if info:
        cfg = config_mod.from_dict(info["config"])
        given = config_mod.from_dict(info.get("given_config", info["config"]))
        return _Sweep(folder, info, cfg, given, space_mod.validate_space(info["space"], cfg),
                      info.get("samples", samples))
    return _Sweep(folder, None, cfg, given, space_mod.load_space(space_file, cfg), samples)


def _open_parent(sw: _Sweep, uri: str, experiment: str) -> str:
    """The sweep's parent run: the saved one when resuming, else a new one (and the sweep's
    info file, written once the run exists)."""
    if sw.info:
        return sw.info["parent_run_id"]
    parent = tracking.start_run(uri, experiment, sw.folder.name, config_mod.flatten(sw.cfg),
                                tracking.reproducibility_tags({"tune.space": sw.space,
                                                               "tune.samples": sw.samples}))
    sw.folder.mkdir(parents=True, exist_ok=True)
    (sw.folder / SWEEP_INFO).write_text(json.dumps({
        "parent_run_id": parent, "config": config_mod.to_dict(sw.cfg),
        "given_config": config_mod.to_dict(sw.given), "space": sw.space,
        "samples": sw.samples}, indent=1))
    return parent


def _searcher(cfg: config_mod.Config, n_conc: int):
    """``tune.search``: seeded random draws, or Optuna's TPE (random for the first
    ``tune.optuna_startup`` trials, then proposals from the trials reported so far; the limiter
    keeps it to ``n_conc`` open proposals). ASHA stops trials either way."""
    if cfg.tune.search == "optuna":
        sampler = TPESampler(seed=cfg.tune.seed, n_startup_trials=cfg.tune.optuna_startup)
        return ConcurrencyLimiter(OptunaSearch(sampler=sampler, metric=cfg.tune.objective,
                                               mode=cfg.tune.mode), max_concurrent=n_conc)

    return BasicVariantGenerator(random_state=cfg.tune.seed, max_concurrent=n_conc)


def _tuner(sw: _Sweep, base: dict[str, Any], n_conc: int):
    cfg = sw.cfg
    trainable = tune.with_resources(tune.with_parameters(run_trial, base=base),
                                    {"cpu": cfg.tune.trial_cpus})
    if sw.info:
        return tune.Tuner.restore(str(sw.folder), trainable, resume_unfinished=True,
                                  resume_errored=True)
    return tune.Tuner(
        trainable, param_space=space_mod.to_tune(sw.space),
        tune_config=tune.TuneConfig(
            metric=cfg.tune.objective, mode=cfg.tune.mode, num_samples=sw.samples,
            # saved with the sweep, so a --resume that restores several unfinished trials
            # still runs them n_conc at a time (the searcher's limit does not apply to
            # restored trials)
            max_concurrent_trials=n_conc,
            scheduler=_scheduler(cfg, sw.space, sw.max_t),
            search_alg=_searcher(cfg, n_conc)),
        run_config=tune.RunConfig(name=sw.folder.name,
                                  storage_path=str(config_mod.storage_dir(cfg)),
                                  # run_trial finds its Train run folder and resumes it
                                  failure_config=tune.FailureConfig(
                                      max_failures=cfg.tune.max_failures)))


def _best(sw: _Sweep, rows: list[dict]) -> tuple[dict, config_mod.Config, dict[str, float]]:
    """The best trial's row, its config (as given, with its values) and its test metrics."""
    scored = [r for r in rows if r["history"]]
    if not scored:
        raise RuntimeError(f"no trial reported {sw.cfg.tune.objective}; see {sw.folder}")
    pick = max if sw.cfg.tune.mode == "max" else min
    best_row = pick(scored, key=lambda r: r["objective"])
    # the config as given (its relative paths stay relative, so --best-out works from the
    # repo on any machine or cluster), with the best trial's values
    best_cfg = config_mod.from_dict(config_mod.to_dict(sw.given))
    for key, value in best_row["values"].items():
        config_mod.set_key(best_cfg, key, value)
    test_metrics = {}
    if best_row["checkpoint"]:
        shards = config_mod.data_paths(sw.cfg.data).shards
        test_metrics = evaluate_checkpoint(best_row["checkpoint"], shards, "test")["metrics"]
    return best_row, best_cfg, test_metrics


def run_sweep(cfg: config_mod.Config, samples: int, space_file: str | None = None,
              resume: bool = False, say=print,
              register: tuple[str, str] | None = None) -> SweepOutcome:
    """Run (or resume) a sweep; return the best trial and its test-split evaluation.
    ``register`` (name, alias): register the best trial's model and point the alias at it."""
    sw = _load_sweep(cfg, samples, space_file, resume)
    # one writer per sweep folder: a second `--resume` of a live sweep is refused
    with FolderLock(sw.folder / SWEEP_LOCK, f"sweep folder {sw.folder}"):
        return _run_sweep(sw, say, register)


def _run_sweep(sw: _Sweep, say, register: tuple[str, str] | None) -> SweepOutcome:
    ensure_ray()
    cluster_cpus = ray.cluster_resources().get("CPU", 1)
    # before any data, MLflow or trial work: a trial that cannot fit is refused
    sw.cfg = cfg = resources.fitted(sw.cfg, cluster_cpus, sweep=True,
                                    nodes=placement.nodes_from_ray(ray.nodes()))
    prepare_dataset(cfg, say)
    if not validation_ids(cfg):
        raise config_mod.ConfigError("data.val_fraction: the validation split is empty")
    sw.max_t = total_epochs(cfg)
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    experiment = cfg.tracking.experiment or cfg.name
    server = tracking.LocalServer(uri) if uri.startswith("sqlite:") else nullcontext(uri)
    with server as live_uri:
        parent = _open_parent(sw, live_uri, experiment)
        n_conc = max_concurrent(cfg, cluster_cpus)
        say(f"[tune] {sw.samples} trials, {n_conc} at a time, {sw.max_t} epochs each, "
            f"scheduler {cfg.tune.scheduler}; parent MLflow run {parent}")
        base = {"config": config_mod.to_dict(cfg), "tracking_uri": live_uri,
                "parent_run_id": parent, "warm_start": warmup.shared(
                    sw.cfg, sw.space, sw.folder / SWEEP_INFO, (sw.info or {}).get("warmup"),
                    live_uri, parent, say)}
        rows = trial_rows(_tuner(sw, base, n_conc).fit(), cfg, sw.max_t)
        shared = cfg.train.stage1_epochs if base["warm_start"] else 0
        epochs_run = epochs_trained(rows, shared)
        # Ctrl-C: Tune saved its state and returned early (maybe during the last trial)
        if len(rows) < sw.samples or any(row["status"] == "unfinished" for row in rows):
            _interrupted(live_uri, experiment, parent, rows, sw.samples, sw.folder)
        close_children(live_uri, experiment, parent, rows)
        best_row, best_cfg, test_metrics = _best(sw, rows)
        log = tracking.RunLogger(live_uri, parent)
        _log_parent_summary(log, cfg, rows, best_row, best_cfg, test_metrics, sw.max_t,
                            epochs_run)
        registered = register_best(live_uri, experiment, parent, rows, best_row,
                                    cfg.tune.mode, register) if register else ""
        if registered:
            log.set_tags({"tune.registered": registered})
        log.end("FINISHED")
    return SweepOutcome(parent, best_row["trial_id"], best_cfg, best_row["objective"], rows,
                        test_metrics, epochs_run, len(rows) * sw.max_t, sw.folder, registered)
