"""Intersection of Pseudo-Labels (docs/method.md §5.4)."""

from __future__ import annotations

import torch


def intersect(m_a: torch.Tensor, m_b: torch.Tensor) -> torch.Tensor:
    """The IPL pseudo-label: pixel-wise logical AND of two binary maps (B, H, W) -> bool."""
    return torch.logical_and(m_a, m_b)
