"""The learning-rate schedule (``optim.schedule``): the optimiser's rate as a function of how far
a run has got, so a resumed run needs no scheduler state (the rate follows from ``state.step``).

- ``constant``: ``optim.lr`` throughout (the optimiser is never touched).
- ``cosine``: ``optim.lr * (1 + cos(pi * p)) / 2`` for progress ``p`` in [0, 1], held at 0 past
  the end (cosine annealing without restarts, Loshchilov & Hutter 2017). The rate is set before
  every step from ``p = steps done / steps planned`` (``engine.loop.step_progress``: the run's
  ``total_epochs`` of ``steps_per_epoch``); in DMT the students anneal across both stages and
  the EMA teachers settle with them.

A run whose length is a CPU-time budget instead of a step count (the benchmark's compute-matched
pair) passes its own progress (CPU seconds spent / budget), so it anneals over the compute it is
given, as the row it is matched to anneals over its steps.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pipeline.config.schema import SCHEDULES

if TYPE_CHECKING:
    import torch


def lr_factor(schedule: str, progress: float) -> float:
    """Multiplier of ``optim.lr`` at ``progress`` (0: first step; 1: end of the plan)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        p = min(max(progress, 0.0), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"optim.schedule: {schedule!r} is not one of {', '.join(SCHEDULES)}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
