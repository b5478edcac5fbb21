"""The Ray Train worker loop: stage 1 warm-up, stage 2 DMT, evaluation, checkpoints, reports.

The algorithm lives in ``pipeline.dmt`` and the epoch engine in ``pipeline.engine``; this shell
only wires them to Ray Train: dataset shards in, DDP around the students, ``ray.train.report``
with a checkpoint at every evaluation, resume from ``ray.train.get_checkpoint()``. Rank 0 logs
to MLflow through ``pipeline.tracking.RunLogger``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import ray.data
import ray.train
import ray.train.torch
import torch

from pipeline import config as config_mod
from pipeline import locations
from pipeline.dmt.state import make_state
from pipeline.engine import checkpoint as ckpt_io
from pipeline.engine import evaluation
from pipeline.engine.batches import to_torch
from pipeline.engine.heatmaps import clips_png, png_image
from pipeline.engine.loop import (
    progress_line,
    run_epoch,
    seed_everything,
    stage_of,
    total_epochs,
    unlabeled_batch_size,
    uses_unlabeled,
    weights_digest,
)
from pipeline.train import progress
from pipeline.train.data import counted, cycle_batches


def average_buffers(module: torch.nn.Module) -> None:
    """All-reduce mean of the floating-point buffers (BatchNorm statistics) over the workers."""
    world = torch.distributed.get_world_size()
    for buf in module.buffers():
        if buf.is_floating_point():
            torch.distributed.all_reduce(buf, op=torch.distributed.ReduceOp.SUM)
            buf.div_(world)


def _gather(obj: Any) -> list[Any]:
    """All workers' ``obj`` on every worker (a list of one outside a process group)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [obj]
    out: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def evaluate_split(state, cfg, shard, to_device, prefix: str) -> dict[str, float]:
    """Scores of this worker's part of the split, gathered from every worker, summarised."""
    batches = shard.iter_batches(batch_size=cfg.optim.batch_size, batch_format="numpy")
    local = evaluation.score_batches(state, batches, to_device)
    merged = evaluation.merge_scores(_gather(local))
    headline = evaluation.reported_role(state.method, cfg.dmt.eval_model)
    return evaluation.summarize_scores(merged, prefix, headline)


def _quiet_ray_logs() -> None:
    """Ray Train logs every report's full metrics dict (about 100 keys here) at INFO; our own
    one-line progress replaces it. Ray Data's progress bars would interleave with it too."""
    # No public API (checked in Ray 2.60): the per-report INFO line comes from the logger of
    # Train's private execution context, which Ray names after that module's file path, and no
    # setting turns it off (the RAY_TRAIN_* variables cover the print patch, not this line).
    from ray.train.v2._internal.execution import context as train_context

    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False


def _restore(state, checkpoint) -> tuple[int, dict[str, int]]:
    """Load the Ray checkpoint into ``state``; return the first epoch still to run and the
    batches drawn from each stream before it (none recorded: a checkpoint from before they were)."""
    with checkpoint.as_directory() as folder:
        data = ckpt_io.load(folder, map_location=state.device)
    state.load_state_dict(data["state"])
    return int(data["epoch"]) + 1, dict(data.get("streams") or {})


def _warm_start(uri: str):
    """The shared warm-up's checkpoint (``loop_config["warm_start"]``: a local folder or an
    object-storage URI) as a Ray checkpoint."""
    where = locations.location(uri)
    if locations.is_remote(where):
        fs, path = locations.fs_path(where)
        return ray.train.Checkpoint(path, filesystem=fs)
    return ray.train.Checkpoint.from_directory(str(where))


def train_loop_per_worker(loop_config: dict[str, Any]) -> dict[str, Any]:
    """Entry point of every Ray Train worker. ``loop_config``: ``config`` (the config as a dict),
    ``logger`` (a RunLogger or None), ``heatmap_clips`` (rows), ``eval_splits``,
    ``init_weights`` (``models.pretrained.InitialWeights`` or None)."""
    cfg = config_mod.from_dict(loop_config["config"])
    _quiet_ray_logs()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(cfg.train.threads or max(1, int(cfg.train.cpus_per_worker)))
    seed_everything(cfg.train.seed)  # identical initial networks on every worker
    device = ray.train.torch.get_device() if cfg.train.use_gpu else torch.device("cpu")
    checkpoint = ray.train.get_checkpoint()  # this run's own latest, after a restart
    # a sweep trial's first start: the shared stage-1 warm-up's checkpoint
    warm = checkpoint is None and bool(loop_config.get("warm_start"))
    if warm:
        checkpoint = _warm_start(loop_config["warm_start"])
    # released weights only for a run from scratch (read once on the driver); a checkpoint
    # holds every weight, so a restarted worker on any node needs no file
    init = loop_config.get("init_weights") if checkpoint is None else None
    state = make_state(cfg.model, cfg.dmt, cfg.optim, device, seed=cfg.train.seed,
                       sample_rate=cfg.data.sample_rate, init=init,
                       precision=cfg.train.precision, channels_last=cfg.train.channels_last)
    state.generator.manual_seed(cfg.train.seed * 1009 + rank)  # per-worker augmentation draws
    start_epoch, drawn = 0, {}
    if checkpoint is not None:
        start_epoch, drawn = _restore(state, checkpoint)
    if world > 1:
        state.sync_buffers = average_buffers
        state.students = [ray.train.torch.prepare_model(s, parallel_strategy_kwargs={
            "find_unused_parameters": True}) for s in state.students]
    logger = loop_config.get("logger") if rank == 0 else None
    if logger is not None and start_epoch > 0:
        logger.set_tags({"warm_start_epoch" if warm else "resumed_from_epoch": start_epoch})
    with _system_metrics(loop_config.get("logger"), cfg, ctx, resumed=checkpoint is not None):
        return _loop(state, cfg, start_epoch, drawn, logger, loop_config, rank, world)


def _system_metrics(logger, cfg, ctx, resumed: bool):
    """MLflow's system metrics from the first worker of each node (``tracking.system_metrics``)
    while it trains; nothing for the others or without a run."""
    if logger is None or not cfg.tracking.system_metrics or ctx.get_local_rank() != 0:
        return contextlib.nullcontext()
    return logger.system_metrics(cfg.tracking.system_metrics_interval_s,
                                 node_rank=ctx.get_node_rank(), resumed=resumed)


def _loop(state, cfg, start_epoch, drawn, logger, loop_config, rank, world) -> dict[str, Any]:
    """Epochs ``start_epoch``.. of the run; ``drawn``: batches drawn from each stream before
    (skipped again, and saved with every checkpoint)."""
    to_device = lambda b: to_torch(b, state.device)  # noqa: E731
    seed = cfg.train.seed * 7919 + rank
    wait = cfg.train.capacity_wait_s
    labeled = counted(cycle_batches(ray.train.get_dataset_shard("labeled"),
                                    cfg.optim.batch_size, "labeled", seed, wait_s=wait),
                      drawn, "labeled")
    unlabeled = None
    if uses_unlabeled(cfg):
        unlabeled = counted(cycle_batches(ray.train.get_dataset_shard("unlabeled"),
                                          unlabeled_batch_size(cfg), "unlabeled", seed,
                                          wait_s=wait), drawn, "unlabeled")
    total = total_epochs(cfg)
    loop_config["total_epochs"] = total
    eval_splits = loop_config.get("eval_splits") or ["test"]
    last: dict[str, float] = {}
    for epoch in range(start_epoch, total):
        t0 = time.perf_counter()
        stage = stage_of(epoch, cfg)
        metrics = run_epoch(state, cfg, stage, labeled, unlabeled, to_device)
        metrics.update({"epoch": epoch + 1, "stage": stage, "step": state.step})
        if (epoch + 1) % cfg.train.eval_every and epoch + 1 != total:
            ray.train.report(metrics)
            continue
        for split in eval_splits:
            metrics.update(evaluate_split(state, cfg, ray.train.get_dataset_shard(split),
                                          to_device, split))
        metrics["time/epoch_s"] = time.perf_counter() - t0
        last = metrics
        _report_with_checkpoint(state, cfg, epoch, metrics, rank, logger, loop_config, drawn)
    if logger is not None:
        logger.log_text(_stream_stats(unlabeled is not None), "ray_data_stats.txt")
    return {"final_metrics": last, "world": world, "start_epoch": start_epoch,
            "epochs": total, "step": state.step,
            # one digest per worker: teachers (and DDP students) must be identical everywhere
            "digests": _gather({"rank": rank, "pid": os.getpid(),
                                "teachers": [weights_digest(m) for m in state.teachers],
                                "students": [weights_digest(m) for m in state.students]})}


def _stream_stats(with_unlabeled: bool) -> str:
    """Ray Data's timings of this worker's training streams (per operator: read, decode; and
    the iterator's: time blocked waiting, batch creation, formatting), the run's record of
    where its input time went (``ray_data_stats.txt``)."""
    parts = []
    for name in ("labeled", "unlabeled") if with_unlabeled else ("labeled",):
        try:
            text = ray.train.get_dataset_shard(name).stats()
        except Exception as exc:  # noqa: BLE001 - a diagnostic: never fail a finished run on it
            text = f"(no stats: {type(exc).__name__}: {exc})"
        parts.append(f"== {name} stream, rank 0 ==\n{text}")
    return "\n\n".join(parts) + "\n"


def _report_with_checkpoint(state, cfg, epoch, metrics, rank, logger, loop_config,
                            drawn) -> None:
    if rank == 0:
        progress.send(loop_config.get("epoch_lines"),
                      progress_line(metrics, loop_config["total_epochs"]))
    if logger is not None:
        logger.log_metrics(metrics, step=epoch + 1)
        png = clips_png(state, cfg, loop_config.get("heatmap_clips") or [],
                        f"epoch {epoch + 1}, {cfg.dmt.method}")
        if png:  # a file per epoch, and the same picture by step for the UI's slider
            logger.log_png(png, f"heatmaps/epoch_{epoch + 1:03d}.png")
            logger.log_image(png_image(png), key="heatmaps", step=epoch + 1)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            ckpt_io.save(tmp, state.state_dict(), epoch=epoch,
                         config=config_mod.to_dict(cfg), metrics=metrics, streams=drawn)
            Path(tmp, "meta.json").write_text(json.dumps(
                {"epoch": epoch + 1, "step": state.step, "stage": state.stage}))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)
