"""The epoch engine shared by every trainer (the Ray Train worker loop, the benchmark's row
trainer, the GPU check): seeding, the schedule, one epoch of steps, the progress line.

An "epoch" is ``train.steps_per_epoch`` steps (labeled and unlabeled streams cycle on their own
lengths), so stage lengths do not depend on how many clips each worker holds.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from pipeline.dmt.step import dmt_step, finite_mean, stage1_step
from pipeline.engine.schedule import lr_factor, set_lr
from pipeline.methods import method_of


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def total_epochs(cfg) -> int:
    """Every method runs ``stage1_epochs + stage2_epochs`` epochs (see ``pipeline.methods``)."""
    return cfg.train.stage1_epochs + cfg.train.stage2_epochs


def planned_steps(cfg) -> int:
    """Steps of the whole run: ``total_epochs`` of ``steps_per_epoch``."""
    return total_epochs(cfg) * cfg.train.steps_per_epoch


def step_progress(step: int, cfg) -> float:
    """Progress of a run planned in steps, after ``step`` steps (the schedule's default)."""
    return step / max(planned_steps(cfg), 1)


def stage_of(epoch: int, cfg) -> int:
    """1 during the warm-up epochs of a method that has one, else 2."""
    warm = method_of(cfg.dmt.method).warmup and epoch < cfg.train.stage1_epochs
    return 1 if warm else 2


def uses_unlabeled(cfg) -> bool:
    """Whether stage 2 draws an unlabeled batch at every step."""
    return method_of(cfg.dmt.method).reads_unlabeled and cfg.optim.unlabeled_ratio > 0


def unlabeled_batch_size(cfg) -> int:
    """Unlabeled clips per step: ``optim.batch_size * optim.unlabeled_ratio``, at least 1."""
    return max(1, round(cfg.optim.batch_size * cfg.optim.unlabeled_ratio))


def run_epoch(state, cfg, stage: int, labeled: Iterator[dict], unlabeled: Iterator[dict] | None,
              to_device: Callable[[dict], dict],
              progress: Callable[[], float] | None = None) -> dict[str, float]:
    """``steps_per_epoch`` steps; returns the epoch means of the step statistics, the time
    spent waiting for data (``data_wait_frac``), samples per second and the last step's rate.

    ``optim.schedule`` sets the rate before every step from ``progress()`` (0 -> 1 over the run;
    default: ``state.step`` over the planned steps, ``pipeline.engine.schedule``)."""
    stats: dict[str, list[float]] = {}
    wait = busy = 0.0
    samples = 0
    for _ in range(cfg.train.steps_per_epoch):
        _schedule_lr(state, cfg, progress)
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
        samples += len(lab["frame"]) + (len(unl["frame"]) if unl is not None else 0)
        for key, value in step_stats.items():
            stats.setdefault(key, []).append(float(value))
    out = {f"train/{k}": finite_mean(v) for k, v in stats.items()}
    out["train/data_wait_frac"] = wait / max(wait + busy, 1e-9)
    out["train/samples_per_s"] = samples / max(wait + busy, 1e-9)
    out["train/lr"] = float(state.optimizer.param_groups[0]["lr"])
    return out


def _schedule_lr(state, cfg, progress: Callable[[], float] | None) -> None:
    if cfg.optim.schedule == "constant":
        return  # the optimiser keeps optim.lr (and a checkpoint's rate) untouched
    p = progress() if progress is not None else step_progress(state.step, cfg)
    set_lr(state.optimizer, cfg.optim.lr * lr_factor(cfg.optim.schedule, p))


def weights_digest(module: torch.nn.Module) -> str:
    """A hash of every parameter and buffer (order fixed by the state dict)."""
    digest = hashlib.sha256()
    for name, tensor in getattr(module, "module", module).state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def progress_line(metrics: dict[str, Any], total: int) -> str:
    """One line per epoch: what a user watches while a run trains."""
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
