"""Binarisation of teacher maps and Noise Filtering by consensus IoU (docs/method.md §5.2-5.3)."""

from __future__ import annotations

import torch


def binarize(p: torch.Tensor, delta: float) -> torch.Tensor:
    """(B, H, W) map in [0, 1] -> bool mask ``p >= delta``."""
    return p >= delta


def consensus_iou(m_a: torch.Tensor, m_b: torch.Tensor) -> torch.Tensor:
    """IoU of two batches of binary maps (B, H, W) -> (B,) float64.

    Two empty maps give IoU 0, not 1: neither teacher found a source, so there is nothing to
    agree on and nothing worth teaching; with IoU 0 such a sample is rejected by any tau > 0.
    float64 so that an IoU equal to tau (e.g. 7/10 against 0.7) compares as equal.
    """
    a, b = m_a.bool().flatten(1), m_b.bool().flatten(1)
    inter = (a & b).sum(dim=1).double()
    union = (a | b).sum(dim=1).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))


def noise_filter(iou: torch.Tensor, tau: float) -> torch.Tensor:
    """Keep mask (B,) bool: a sample is kept iff its consensus IoU >= tau."""
    return iou >= tau
