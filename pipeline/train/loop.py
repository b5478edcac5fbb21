"""The Ray Train worker loop: stage 1 warm-up, stage 2 DMT, evaluation, checkpoints, reports.

The algorithm lives in ``pipeline.dmt``; this shell only wires it to Ray Train: dataset shards in,
DDP around the students, ``ray.train.report`` with a checkpoint at every evaluation, resume from
``ray.train.get_checkpoint()``. Rank 0 logs to MLflow through ``pipeline.tracking.RunLogger``.

An "epoch" is ``train.steps_per_epoch`` steps (labeled and unlabeled streams cycle on their own
lengths), so stage lengths do not depend on how many clips each worker holds.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import config as config_mod
from pipeline.dmt.state import make_state
from pipeline.dmt.step import dmt_step, finite_mean, stage1_step
from pipeline.train import checkpoint as ckpt_io
from pipeline.train import data as train_data
from pipeline.train import evaluation


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def stage_of(epoch: int, cfg: config_mod.Config) -> int:
    """ezvsl has no boxes to warm up on: all its epochs are stage 2 (contrastive on all clips)."""
    if cfg.dmt.method == "ezvsl":
        return 2
    return 1 if epoch < cfg.train.stage1_epochs else 2


def total_epochs(cfg: config_mod.Config) -> int:
    return (0 if cfg.dmt.method == "ezvsl" else cfg.train.stage1_epochs) + cfg.train.stage2_epochs


def weights_digest(module: torch.nn.Module) -> str:
    """A hash of every parameter and buffer (order fixed by the state dict)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in getattr(module, "module", module).state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


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


def uses_unlabeled(cfg: config_mod.Config) -> bool:
    return cfg.dmt.method != "supervised" and cfg.optim.unlabeled_ratio > 0


def run_epoch(state, cfg, stage: int, labeled, unlabeled, to_device) -> dict[str, float]:
    """``steps_per_epoch`` steps; returns the epoch means of the step statistics, and the time
    spent waiting for data (``data_wait_frac``)."""
    stats: dict[str, list[float]] = {}
    wait = busy = 0.0
    for _ in range(cfg.train.steps_per_epoch):
        t0 = time.perf_counter()
        lab = to_device(next(labeled))
        unl = to_device(next(unlabeled)) if (unlabeled is not None and stage == 2) else None
        t1 = time.perf_counter()
        if stage == 1:
            step_stats = stage1_step(state, lab, cfg.dmt)
        else:
            step_stats = dmt_step(state, lab, unl, cfg.dmt)
        t2 = time.perf_counter()
        wait, busy = wait + (t1 - t0), busy + (t2 - t1)
        for key, value in step_stats.items():
            stats.setdefault(key, []).append(float(value))
    out = {f"train/{k}": finite_mean(v) for k, v in stats.items()}
    out["train/data_wait_frac"] = wait / max(wait + busy, 1e-9)
    out["train/samples_per_s"] = cfg.train.steps_per_epoch * cfg.optim.batch_size * (
        1 + (cfg.optim.unlabeled_ratio if unlabeled is not None and stage == 2 else 0)
    ) / max(wait + busy, 1e-9)
    return out


def evaluate_split(state, cfg, shard, to_device, prefix: str) -> dict[str, float]:
    batches = shard.iter_batches(batch_size=cfg.optim.batch_size, batch_format="numpy")
    local = evaluation.score_batches(state, batches, to_device)
    merged = evaluation.merge_scores(_gather(local))
    headline = evaluation.reported_role(state.method, cfg.dmt.eval_model)
    return evaluation.summarize_scores(merged, prefix, headline)


def _heatmap_png(state, cfg, clips: list[dict], to_device, title: str) -> bytes | None:
    if not clips:
        return None
    from pipeline.dmt.step import predict_maps
    from pipeline.train.heatmaps import overlay_grid_png

    conv = train_data.ToTrainingBatch(cfg.model.image_size, "gt")
    batch = conv({k: np.asarray([c[k] for c in clips], dtype=object) for k in clips[0]})
    role = evaluation.reported_role(state.method, cfg.dmt.eval_model)
    maps = predict_maps(state, to_device(batch), role).cpu().numpy()
    full = [train_data.decode_jpeg(c["frame_jpeg"]) for c in clips]
    items = [{"frame": f, "map": m, "boxes": c["boxes"], "title": c["id"]}
             for f, m, c in zip(full, maps, clips, strict=True)]
    return overlay_grid_png(items, suptitle=title)


def _quiet_ray_logs() -> None:
    """Ray Train logs every report's full metrics dict (about 100 keys here) at INFO; our own
    one-line progress replaces it. Ray Data's progress bars would interleave with it too."""
    import logging

    import ray.data
    from ray.train.v2._internal.execution import context as train_context

    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False


def progress_line(metrics: dict[str, float], total: int) -> str:
    """One line per epoch: what a user watches while `dmt train` runs."""
    parts = [f"[epoch {int(metrics['epoch'])}/{total}] stage {int(metrics['stage'])}",
             f"loss {metrics.get('train/loss_total', float('nan')):.3f}"]
    if metrics.get("stage") == 2 and "train/kept" in metrics:
        parts.append(f"kept {metrics['train/kept']:.1f}/"
                     f"{metrics['train/kept'] + metrics['train/filtered']:.0f}")
    for split in ("test", "val"):
        if f"{split}/ciou" in metrics:
            parts.append(f"{split} CIoU {metrics[f'{split}/ciou']:.3f} "
                         f"(fixed {metrics[f'{split}/ciou_fixed']:.3f})")
    if "time/epoch_s" in metrics:
        parts.append(f"{metrics['time/epoch_s']:.1f} s")
    return " | ".join(parts)


def _restore(state, checkpoint) -> int:
    """Load the Ray checkpoint into ``state``; return the first epoch still to run."""
    with checkpoint.as_directory() as folder:
        data = ckpt_io.load(folder, map_location=state.device)
    state.load_state_dict(data["state"])
    return int(data["epoch"]) + 1


def train_loop_per_worker(loop_config: dict[str, Any]) -> dict[str, Any]:
    """Entry point of every Ray Train worker. ``loop_config``: ``config`` (the config as a dict),
    ``logger`` (a RunLogger or None), ``heatmap_clips`` (rows), ``run_info`` (dict, for tags)."""
    import ray.train
    import ray.train.torch

    cfg = config_mod.from_dict(loop_config["config"])
    _quiet_ray_logs()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(cfg.train.threads or max(1, int(cfg.train.cpus_per_worker)))
    seed_everything(cfg.train.seed)  # identical initial networks on every worker
    device = ray.train.torch.get_device() if cfg.train.use_gpu else torch.device("cpu")
    state = make_state(cfg.model, cfg.dmt, cfg.optim, device, seed=cfg.train.seed,
                       sample_rate=cfg.data.sample_rate)
    state.generator.manual_seed(cfg.train.seed * 1009 + rank)  # per-worker augmentation draws
    start_epoch = 0
    if (checkpoint := ray.train.get_checkpoint()) is not None:
        start_epoch = _restore(state, checkpoint)
    if world > 1:
        state.sync_buffers = average_buffers
        state.students = [ray.train.torch.prepare_model(s, parallel_strategy_kwargs={
            "find_unused_parameters": True}) for s in state.students]
    logger = loop_config.get("logger") if rank == 0 else None
    if logger is not None and start_epoch > 0:
        logger.set_tags({"resumed_from_epoch": start_epoch})
    return _loop(state, cfg, start_epoch, logger, loop_config, rank, world)


def _loop(state, cfg, start_epoch, logger, loop_config, rank, world) -> dict[str, Any]:
    import ray.train

    to_device = lambda b: train_data.to_torch(b, state.device)  # noqa: E731
    seed = cfg.train.seed * 7919 + rank
    labeled = train_data.cycle_batches(ray.train.get_dataset_shard("labeled"),
                                       cfg.optim.batch_size, "labeled", seed)
    unlabeled = None
    if uses_unlabeled(cfg):
        unlabeled = train_data.cycle_batches(
            ray.train.get_dataset_shard("unlabeled"),
            max(1, round(cfg.optim.batch_size * cfg.optim.unlabeled_ratio)), "unlabeled", seed)
    total = total_epochs(cfg)
    loop_config["total_epochs"] = total
    eval_split = loop_config.get("eval_split", "test")
    last: dict[str, float] = {}
    for epoch in range(start_epoch, total):
        t0 = time.perf_counter()
        stage = stage_of(epoch, cfg)
        metrics = run_epoch(state, cfg, stage, labeled, unlabeled, to_device)
        metrics.update({"epoch": epoch + 1, "stage": stage, "step": state.step})
        if (epoch + 1) % cfg.train.eval_every and epoch + 1 != total:
            ray.train.report(metrics)
            continue
        metrics.update(evaluate_split(state, cfg, ray.train.get_dataset_shard(eval_split),
                                      to_device, eval_split))
        metrics["time/epoch_s"] = time.perf_counter() - t0
        last = metrics
        _report_with_checkpoint(state, cfg, epoch, metrics, rank, logger, loop_config, to_device)
    return {"final_metrics": last, "world": world, "start_epoch": start_epoch,
            "epochs": total, "step": state.step,
            # one digest per worker: teachers (and DDP students) must be identical everywhere
            "digests": _gather({"rank": rank, "pid": os.getpid(),
                                "teachers": [weights_digest(m) for m in state.teachers],
                                "students": [weights_digest(m) for m in state.students]})}


def _report_with_checkpoint(state, cfg, epoch, metrics, rank, logger, loop_config, to_device):
    import ray.train

    if rank == 0:
        print(progress_line(metrics, loop_config["total_epochs"]), flush=True)
    if logger is not None:
        logger.log_metrics(metrics, step=epoch + 1)
        png = _heatmap_png(state, cfg, loop_config.get("heatmap_clips") or [], to_device,
                           f"epoch {epoch + 1}, {cfg.dmt.method}")
        if png:
            logger.log_png(png, f"heatmaps/epoch_{epoch + 1:03d}.png")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            ckpt_io.save(tmp, state.state_dict(), epoch=epoch,
                         config=config_mod.to_dict(cfg), metrics=metrics)
            Path(tmp, "meta.json").write_text(json.dumps(
                {"epoch": epoch + 1, "step": state.step, "stage": state.stage}))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)
