"""The driver side of `dmt train`: MLflow run opened, TorchTrainer fitted, run closed.

Also used by `dmt tune` (one trial = one call of :func:`fit`) and `dmt demo`. The data must be
prepared first (``pipeline.prepare.prepare_dataset``); fit never writes data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.data import DataContext, ExecutionOptions
from ray.train.torch import TorchTrainer

from pipeline import config as config_mod
from pipeline import locations, tracking
from pipeline.data.reader import load_quarantine
from pipeline.engine.heatmaps import heatmap_clips
from pipeline.errors import no_space
from pipeline.locks import FolderLock
from pipeline.models.pretrained import read_initial_weights
from pipeline.prepare import require_shards
from pipeline.ray_env import check_shared, ensure_ray
from pipeline.train import placement, resources
from pipeline.train.data import build_datasets, eval_splits_of
from pipeline.train.failures import disk_full_in_run, end_failed, print_worker_errors
from pipeline.train.loop import train_loop_per_worker
from pipeline.train.model_choice import checkpoint_config, checkpoint_location, log_checkpoints
from pipeline.train.progress import EpochLineRelay

log = logging.getLogger("dmt.train")
RUN_INFO = "dmt_run.json"  # written into the Ray run folder: how to resume it
RUN_LOCK = ".dmt.lock"  # held there while a process trains the run


@dataclass
class TrainOutcome:
    """Where a run went. ``checkpoint_path``/``metrics``: its last epoch (what ``--resume`` and
    a sweep's shared warm-up continue from); ``model_*``: the checkpoint logged and registered
    as the run's model, the best by ``train.select_metric`` (the last epoch's without one)."""

    run_id: str | None
    tracking_uri: str
    ray_run_path: Path
    checkpoint_path: Path | None
    metrics: dict[str, float]
    return_value: Any
    model_checkpoint_path: Path | None = None
    model_epoch: int | None = None
    model_metrics: dict[str, float] | None = None
    selected_by: str = ""


def build_trainer(cfg: config_mod.Config, datasets: dict[str, Any], loop_config: dict[str, Any],
                  name: str, storage: Path, callbacks: list | None = None):
    resources = {"CPU": cfg.train.cpus_per_worker}
    if cfg.train.use_gpu:
        resources["GPU"] = 1
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu,
            resources_per_worker=resources, placement_strategy=cfg.train.placement_strategy,
            label_selector=config_mod.label_selector(cfg.train.worker_nodes)),
        run_config=ray.train.RunConfig(
            name=name, storage_path=str(storage), callbacks=callbacks or None,
            failure_config=ray.train.FailureConfig(
                max_failures=cfg.train.max_failures,
                # a worker group that cannot start (its node gone) times out after
                # WORKER_GROUP_START_TIMEOUT_S and is retried; Ray's default retries forever
                controller_failure_limit=capacity_retries(cfg)),
            checkpoint_config=checkpoint_config(cfg, loop_config.get("eval_splits", ["test"]))),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(execution_options=_ordered_ingest(cfg)),
    )


WORKER_GROUP_START_TIMEOUT_S = 60.0  # Ray Train 2.60's default (RAY_TRAIN_WORKER_GROUP_...)


def fit_to_cluster(cfg: config_mod.Config) -> config_mod.Config:
    """``cfg`` with its CPUs per worker fitted to the cluster's nodes, or a ConfigError before
    any work: a run that cannot hold its workers and Ray Data's stream beside them, in total or
    on one node, would train stage 1 and then wait forever at the start of stage 2."""
    ensure_ray()

    return resources.fitted(cfg, ray.cluster_resources().get("CPU", 0.0),
                            nodes=placement.nodes_from_ray(ray.nodes()))


def capacity_retries(cfg: config_mod.Config) -> int:
    """Worker-group start attempts that cover ``train.capacity_wait_s``."""
    timeout = float(os.environ.get("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S",
                                   WORKER_GROUP_START_TIMEOUT_S))
    return max(1, math.ceil(cfg.train.capacity_wait_s / timeout))


def _ordered_ingest(cfg: config_mod.Config):
    """Train's ingest options for the worker shards (Ray Data's current limits), with
    ``preserve_order`` and the data nodes' labels (set here on the driver: Train resolves its
    defaults in its controller, whose Ray Data context is not this one)."""

    # built here, not with DataConfig.default_ingest_options(), which passes Ray Data's
    # deprecated exclude_resources on (a RayDeprecationWarning in every run)
    ctx = DataContext.get_current().execution_options
    return ExecutionOptions(resource_limits=ctx.resource_limits, preserve_order=True,
                            verbose_progress=ctx.verbose_progress,
                            label_selector=config_mod.label_selector(cfg.data.nodes))


def _resume_info(target: str, uri: str) -> dict[str, Any]:
    """``dmt train --resume`` accepts a Ray run folder (a path or an s3:// URI) or an MLflow run
    id."""
    folder = locations.location(target, "--resume")
    if not folder.exists():
        try:
            run = tracking.get_run(uri, target)
        except Exception as exc:  # noqa: BLE001 - MLflow raises several types for a bad id
            raise FileNotFoundError(f"--resume {target!r}: neither a Ray run folder nor an "
                                    f"MLflow run id in {uri} ({exc})") from None
        folder = locations.location(run.data.tags.get("ray.run_path", ""))
    info_file = folder / RUN_INFO
    if not info_file.is_file():
        raise FileNotFoundError(f"--resume {target!r}: {info_file} not found (not a dmt run)")
    return json.loads(info_file.read_text())


def resumed_config(target: str, cfg: config_mod.Config) -> config_mod.Config:
    """The config a ``--resume`` target (Ray run folder or MLflow run id) was started with."""
    return config_mod.from_dict(_resume_info(target, tracking.resolve_tracking_uri(
        cfg.tracking.uri))["config"])


def _dataset_tags(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("inputs", "rows", "quarantined", "schema_version", "splits", "missing")
    return {"dataset": {k: summary.get(k) for k in keep if k in summary}}


def fit(cfg: config_mod.Config, *, resume: str | None = None, parent_run_id: str | None = None,
        run_name: str | None = None, callbacks: list | None = None, eval_split: str = "test",
        resume_uri: str | None = None, say=print, epoch_lines: bool = True,
        warm_start: dict[str, str] | None = None) -> TrainOutcome:
    """Train one run end to end and return where everything went. ``resume_uri``: where the
    resumed run's MLflow store is served now, if not where it was (a sweep's private server
    gets a new port each time the sweep runs). ``epoch_lines``: the rank-0 worker's line per
    epoch goes to ``say`` (else to the worker's log file: a sweep trial). ``warm_start``
    (``checkpoint``, ``run_id``): start from another run's checkpoint (a sweep's shared
    stage-1 warm-up, ``pipeline.tune.warmup``) until this run has one of its own."""
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    cfg = config_mod.resolve_paths(cfg)
    if resume:  # the run's own config and MLflow store, whatever this command was given
        info = _resume_info(resume, uri)
        cfg, uri = config_mod.from_dict(info["config"]), resume_uri or info["uri"]
        cfg.tracking.uri = uri
        warm_start = info.get("warm_start")
    summary = require_shards(cfg)
    # the weights files are read (and checked) once, here, for a run from scratch
    init = None if resume or warm_start else read_initial_weights(cfg.model)
    cfg = fit_to_cluster(cfg)
    storage = config_mod.storage_dir(cfg)
    check_shared({"data.shards": config_mod.data_paths(cfg.data).shards,
                  "train.storage": locations.location(info["storage"]) if resume else storage})
    if resume:
        run_id, name = info["run_id"], info["name"]
        storage = locations.location(info["storage"])
        say(f"[train] resuming {name} (MLflow run {run_id})")
    else:
        tags = tracking.reproducibility_tags(_dataset_tags(summary))
        tags[tracking.NOTE_TAG] = tracking.run_description(cfg.name)
        run_id = tracking.start_run(uri, cfg.tracking.experiment or cfg.name,
                                    run_name or cfg.name, config_mod.flatten(cfg), tags,
                                    parent_run_id=parent_run_id,
                                    retry_s=cfg.tracking.retry_s)
        name = run_name or f"{cfg.name}-{run_id[:12]}"
    run_path = storage / name
    # one writer per run folder: a second `--resume` of a live run is refused
    with FolderLock(run_path / RUN_LOCK, f"training run folder {run_path}"):
        return _fit_locked(cfg, resume, run_id, name, storage, run_path, uri, init, eval_split,
                           callbacks, say, epoch_lines, summary, warm_start)


def _log_inputs(logger, cfg: config_mod.Config, summary: dict[str, Any],
                datasets: dict[str, Any]) -> None:
    """The splits the run reads, as MLflow dataset inputs (``val`` and the labeled clips left
    for training counted, as the summary holds the labeled split whole)."""
    shards = str(config_mod.data_paths(cfg.data).shards)
    rows = ({"val": datasets["val"].count(), "labeled": datasets["labeled"].count()}
            if "val" in datasets else None)
    logger.log_shard_inputs(shards, summary, list(datasets), rows)
    try:  # lineage: the run that wrote these shards, found by their summary's digest
        tracking.link_preprocess_run(logger.uri, logger.run_id, shards, summary,
                                     load_quarantine(shards))
    except Exception as exc:  # noqa: BLE001 - a missing link must not stop a training run
        log.warning("could not link the preprocessing run of %s: %s: %s", shards,
                    type(exc).__name__, exc)


def _fit_locked(cfg: config_mod.Config, resume: str | None, run_id: str, name: str,
                storage: Path, run_path: Path, uri: str, init: Any, eval_split: str,
                callbacks: list | None, say, epoch_lines: bool, summary: dict[str, Any],
                warm_start: dict[str, str] | None) -> TrainOutcome:
    """The run's folder written, its trainer fitted and its MLflow run closed."""
    logger = tracking.RunLogger(uri, run_id, cfg.tracking.retry_s)
    run_path.mkdir(parents=True, exist_ok=True)
    (run_path / RUN_INFO).write_text(json.dumps({"run_id": run_id, "name": name,
                                                 "storage": str(storage), "uri": uri,
                                                 "config": config_mod.to_dict(cfg),
                                                 "warm_start": warm_start}, indent=1))
    logger.set_tags({"ray.run_path": str(run_path), "ray.run_name": name,
                     "method": cfg.dmt.method,
                     **({"tune.warmup_run_id": warm_start["run_id"]} if warm_start else {})})
    if not resume:
        logger.log_text(config_mod.dump_yaml(cfg), "config.yaml")
    clips = heatmap_clips(config_mod.data_paths(cfg.data).shards, cfg.tracking.heatmaps)
    eval_splits = eval_splits_of(cfg, eval_split)
    try:
        datasets = build_datasets(cfg, eval_splits)
    except Exception as exc:
        end_failed(logger, exc, run_path, cfg)
        raise
    if not resume:
        _log_inputs(logger, cfg, summary, datasets)
    relay = EpochLineRelay(say) if epoch_lines else contextlib.nullcontext()
    say(f"[train] {cfg.dmt.method}: {cfg.train.num_workers} worker(s); run folder {run_path}")
    try:
        with relay as queue:
            loop_config = {"config": config_mod.to_dict(cfg), "logger": logger,
                           "heatmap_clips": clips, "eval_splits": eval_splits,
                           "init_weights": init, "epoch_lines": queue,
                           "warm_start": warm_start["checkpoint"] if warm_start else None}
            result = build_trainer(cfg, datasets, loop_config, name, storage,
                                   callbacks).fit()
    except KeyboardInterrupt:
        logger.end("KILLED")
        raise
    except Exception as exc:
        print_worker_errors(exc)
        end_failed(logger, exc, run_path, cfg)
        raise
    outcome = TrainOutcome(run_id, uri, run_path,
                           checkpoint_location(result.checkpoint, run_path),
                           dict(result.metrics or {}), result.return_value)
    if outcome.checkpoint_path is not None:
        try:
            (outcome.model_checkpoint_path, outcome.model_epoch, outcome.model_metrics,
             outcome.selected_by) = log_checkpoints(logger, cfg, result, eval_splits, run_path)
        except Exception as exc:
            with contextlib.suppress(Exception):
                logger.end("FAILED")
            if no_space(exc):
                root = tracking.local_artifact_root(uri)
                raise disk_full_in_run(run_path, exc, Path(root[len("file://"):]) if root
                                       else None, finished=True) from None
            raise
    logger.end("FINISHED")
    return outcome
