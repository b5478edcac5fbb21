"""The driver side of `dmt train`: MLflow run opened, TorchTrainer fitted, run closed.

Also used by `dmt tune` (one trial = one call of :func:`fit`) and `dmt demo`. The data must be
prepared first (``pipeline.prepare.prepare_dataset``); fit never writes data.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import config as config_mod
from pipeline import locations
from pipeline.engine import checkpoint as ckpt_io
from pipeline.engine.heatmaps import heatmap_clips
from pipeline.locks import FolderLock
from pipeline.models.pretrained import read_initial_weights
from pipeline.prepare import require_shards
from pipeline.ray_env import check_shared, ensure_ray
from pipeline.train import placement, resources
from pipeline.train.data import build_datasets

log = logging.getLogger("dmt.train")
RUN_INFO = "dmt_run.json"  # written into the Ray run folder: how to resume it
RUN_LOCK = ".dmt.lock"  # held there while a process trains the run


@dataclass
class TrainOutcome:
    run_id: str | None
    tracking_uri: str
    ray_run_path: Path
    checkpoint_path: Path | None
    metrics: dict[str, float]
    return_value: Any


def build_trainer(cfg: config_mod.Config, datasets: dict[str, Any], loop_config: dict[str, Any],
                  name: str, storage: Path, callbacks: list | None = None):
    import ray.train
    from ray.train.torch import TorchTrainer

    from pipeline.train.loop import train_loop_per_worker

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
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(execution_options=_ordered_ingest(cfg)),
    )


WORKER_GROUP_START_TIMEOUT_S = 60.0  # Ray Train 2.60's default (RAY_TRAIN_WORKER_GROUP_...)


def fit_to_cluster(cfg: config_mod.Config) -> config_mod.Config:
    """``cfg`` with its CPUs per worker fitted to the cluster's nodes, or a ConfigError before
    any work: a run that cannot hold its workers and Ray Data's stream beside them, in total or
    on one node, would train stage 1 and then wait forever at the start of stage 2."""
    ensure_ray()
    import ray

    return resources.fitted(cfg, ray.cluster_resources().get("CPU", 0.0),
                            nodes=placement.nodes_from_ray(ray.nodes()))


def capacity_retries(cfg: config_mod.Config) -> int:
    """Worker-group start attempts that cover ``train.capacity_wait_s``."""
    import math
    import os

    timeout = float(os.environ.get("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S",
                                   WORKER_GROUP_START_TIMEOUT_S))
    return max(1, math.ceil(cfg.train.capacity_wait_s / timeout))


def _ordered_ingest(cfg: config_mod.Config):
    """Train's ingest options for the worker shards (Ray Data's current limits), with
    ``preserve_order`` and the data nodes' labels (set here on the driver: Train resolves its
    defaults in its controller, whose Ray Data context is not this one)."""

    from ray.data import DataContext, ExecutionOptions

    # built here, not with DataConfig.default_ingest_options(), which passes Ray Data's
    # deprecated exclude_resources on (a RayDeprecationWarning in every run)
    ctx = DataContext.get_current().execution_options
    return ExecutionOptions(resource_limits=ctx.resource_limits, preserve_order=True,
                            verbose_progress=ctx.verbose_progress,
                            label_selector=config_mod.label_selector(cfg.data.nodes))


def _end_failed(logger, exc: Exception, run_path: Path, cfg: config_mod.Config) -> None:
    """Mark the run FAILED; when the tracking server is what failed (a worker could not log
    for ``tracking.retry_s``) or the cluster could not hold the workers for
    ``train.capacity_wait_s``, say so in one error, with the command that continues the run."""
    from pipeline.errors import ClusterCapacityError, TrackingUnavailableError, no_space

    text = f"{type(exc).__name__} {exc}"
    if no_space(exc):
        with contextlib.suppress(Exception):  # the tracking store may share the full device
            logger.end("FAILED")
        raise disk_full_in_run(run_path, exc) from None
    if "ClusterCapacityError" in text or "ExecutionTimeoutError" in text:
        # a worker's data stream got no rows for train.capacity_wait_s, or Ray Data's own guard
        # (DataContext.execution_no_progress_timeout_s, 30 minutes) stopped the decoding of
        # the labeled and evaluation splits: no CPU for its tasks
        logger.end("FAILED")
        found = next((line for line in text.splitlines() if "delivered no rows" in line),
                     "Ray Data made no progress for DataContext.execution_no_progress_timeout_"
                     "s (its tasks could not be scheduled)")
        raise ClusterCapacityError(
            f"{found.split('ClusterCapacityError: ')[-1].strip()}; training stopped, its "
            f"checkpoints are in {run_path}: once the capacity is back, `dmt train --resume "
            f"{run_path}` continues the run") from None
    if "WorkerGroupStartupTimeoutError" in text or "worker group startup timed out" in text:
        logger.end("FAILED")
        raise ClusterCapacityError(
            f"the cluster could not hold {cfg.train.num_workers} training worker(s) for "
            f"train.capacity_wait_s={cfg.train.capacity_wait_s:g} s (a node lost and not "
            f"replaced?); training stopped, its checkpoints are in {run_path}: once the "
            f"capacity is back, `dmt train --resume {run_path}` continues the run") from None
    tracking_down = "TrackingUnavailableError" in text
    try:
        if tracking_down:
            logger.retry_s = min(logger.retry_s, 10.0)  # it was just given its full wait
        logger.end("FAILED")
    except TrackingUnavailableError:
        tracking_down = True
    if tracking_down:
        first = next((line for line in str(exc).splitlines() if "unreachable for" in line),
                     "the MLflow tracking server is unreachable")
        raise TrackingUnavailableError(
            f"{first.split('TrackingUnavailableError: ')[-1].strip()}; training stopped, its "
            f"checkpoints are in {run_path}: once the server is back, `dmt train --resume "
            f"{run_path}` continues the run") from None


def disk_full_in_run(run_path: Path, exc: BaseException, where: Path | None = None,
                     finished: bool = False):
    """A training run stopped by a full device: the path that was written (the error's, else
    ``where``), the bytes a checkpoint takes and free there, the resume command. A checkpoint
    that Ray could not finish copying (a truncated ``state.pt``, a folder without one) is
    removed: no reader may take it for the run's latest. ``finished``: the training itself
    ended, what failed was logging its model."""
    import re
    import shutil

    from pipeline.errors import DiskFullError, no_space_path

    named = no_space_path(exc) or re.search(r"No space left on device: '([^']+)'", str(exc))
    if named is not None and not isinstance(named, str):
        named = named.group(1)
    where = Path(named) if named else (where or run_path)
    whole = _whole_checkpoints(run_path)
    size = (whole[-1] / ckpt_io.FILENAME).stat().st_size if whole else 0
    probe = next((p for p in (where, *where.parents) if p.exists()), run_path)
    free = shutil.disk_usage(probe).free
    last = f"its last whole checkpoint is {whole[-1]}" if whole else "no checkpoint was kept"
    need = f"a checkpoint takes {size:,} bytes, " if size else ""
    state, then = (("training finished but its model was not logged", " and logs the model")
                   if finished else ("training stopped", ""))
    return DiskFullError(
        f"no space left on the device writing {where}: {need}{free:,} bytes free there; "
        f"{state}, {last}: free space, then `dmt train --resume {run_path}` continues the "
        f"run{then}")


def _whole_checkpoints(run_path: Path) -> list[Path]:
    """The run's checkpoint folders that load, oldest first; the others are deleted."""
    import shutil

    whole = []
    for folder in sorted(p for p in run_path.glob("checkpoint_*") if p.is_dir()):
        try:
            ckpt_io.load(folder / ckpt_io.FILENAME)
            whole.append(folder)
        except (OSError, ValueError):
            shutil.rmtree(folder, ignore_errors=True)
    return whole


def _print_worker_errors(exc: Exception) -> None:
    """Each failed worker's whole traceback on stderr: Ray Train's own message keeps the first
    and last 500 characters of it ("Output truncated"), which hides the cause, and the
    workers' output is not on the console (``pipeline.console``)."""
    import sys

    for rank, error in sorted((getattr(exc, "worker_failures", None) or {}).items()):
        print(f"[train] worker {rank} failed:\n{error}", file=sys.stderr, flush=True)


def _resume_info(target: str, uri: str) -> dict[str, Any]:
    """``dmt train --resume`` accepts a Ray run folder (a path or an s3:// URI) or an MLflow run
    id."""
    folder = locations.location(target, "--resume")
    if not folder.exists():
        from pipeline import tracking

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
    from pipeline import tracking

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
    from pipeline import tracking

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
    """The splits the run reads, as MLflow dataset inputs (``val`` counted from its ids)."""
    shards = str(config_mod.data_paths(cfg.data).shards)
    rows = {"val": datasets["val"].count()} if "val" in datasets else None
    logger.log_shard_inputs(shards, summary, list(datasets), rows)


def _fit_locked(cfg: config_mod.Config, resume: str | None, run_id: str, name: str,
                storage: Path, run_path: Path, uri: str, init: Any, eval_split: str,
                callbacks: list | None, say, epoch_lines: bool, summary: dict[str, Any],
                warm_start: dict[str, str] | None) -> TrainOutcome:
    """The run's folder written, its trainer fitted and its MLflow run closed."""
    from pipeline import tracking
    from pipeline.errors import no_space
    from pipeline.train.progress import EpochLineRelay

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
    try:
        datasets = build_datasets(cfg, eval_split)
    except Exception as exc:
        _end_failed(logger, exc, run_path, cfg)
        raise
    if not resume:
        _log_inputs(logger, cfg, summary, datasets)
    relay = EpochLineRelay(say) if epoch_lines else contextlib.nullcontext()
    say(f"[train] {cfg.dmt.method}: {cfg.train.num_workers} worker(s); run folder {run_path}")
    try:
        with relay as queue:
            loop_config = {"config": config_mod.to_dict(cfg), "logger": logger,
                           "heatmap_clips": clips, "eval_split": eval_split,
                           "init_weights": init, "epoch_lines": queue,
                           "warm_start": warm_start["checkpoint"] if warm_start else None}
            result = build_trainer(cfg, datasets, loop_config, name, storage,
                                   callbacks).fit()
    except KeyboardInterrupt:
        logger.end("KILLED")
        raise
    except Exception as exc:
        _print_worker_errors(exc)
        _end_failed(logger, exc, run_path, cfg)
        raise
    checkpoint_path = _checkpoint_location(result.checkpoint, run_path)
    if checkpoint_path is not None:
        with result.checkpoint.as_directory() as local:  # downloaded when in object storage
            state = Path(local) / "state.pt"
            try:
                logger.log_artifact(state, "checkpoint")  # for --resume elsewhere
                # the MLflow model (runs:/<id>/model): the Models tab, the registry, pyfunc
                tracking.log_model(logger, state, cfg)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    logger.end("FAILED")
                if no_space(exc):
                    root = tracking.local_artifact_root(uri)
                    raise disk_full_in_run(run_path, exc, Path(root[len("file://"):]) if root
                                           else None, finished=True) from None
                raise
    logger.end("FINISHED")
    return TrainOutcome(run_id, uri, run_path, checkpoint_path, dict(result.metrics or {}),
                        result.return_value)


def _checkpoint_location(checkpoint: Any, run_path: locations.Location):
    """Where Ray Train left the run's checkpoint: its local folder, or in object storage the
    checkpoint's folder under the run folder (whose URI keeps the endpoint options)."""
    if checkpoint is None:
        return None
    if locations.is_remote(run_path):
        return run_path / checkpoint.path.rstrip("/").rsplit("/", 1)[-1]
    return Path(checkpoint.path)
