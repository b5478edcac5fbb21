"""Teacher <- student exponential moving average (docs/method.md §6)."""

from __future__ import annotations

import torch
from torch import nn


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel (or DataParallel) wrapper, else itself."""
    return getattr(module, "module", module)


def _blend(t: torch.Tensor, s: torch.Tensor, alpha: float) -> None:
    # alpha 0 and 1 are exact (copy / no-op) rather than relying on lerp's rounding.
    if alpha == 0.0:
        t.copy_(s)
    elif alpha != 1.0:
        t.lerp_(s.to(t.dtype), 1.0 - alpha)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float) -> None:
    """In place: ``theta_T = alpha * theta_T + (1 - alpha) * theta_S`` for every parameter and
    every floating-point buffer (BatchNorm running mean/var follow the student too, otherwise an
    eval-mode teacher would normalise with stale statistics). Integer buffers (BN's
    ``num_batches_tracked``) are copied. ``alpha=0`` copies the student, ``alpha=1`` leaves the
    teacher unchanged. Either module may be DDP-wrapped. No gradient is recorded.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"ema_update: alpha must be in [0, 1], got {alpha}")
    t_mod, s_mod = unwrap(teacher), unwrap(student)
    for kind in ("named_parameters", "named_buffers"):
        t_items = dict(getattr(t_mod, kind)())
        s_items = dict(getattr(s_mod, kind)())
        if t_items.keys() != s_items.keys():
            diff = sorted(set(t_items) ^ set(s_items))[:5]
            raise ValueError(f"ema_update: teacher and student differ in {kind[6:]}: {diff}")
        for name, t in t_items.items():
            s = s_items[name]
            if t.is_floating_point():
                _blend(t, s, alpha)
            else:
                t.copy_(s)
