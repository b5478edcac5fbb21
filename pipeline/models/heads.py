"""EZ-VSL's similarity, multiple-instance contrastive loss and localization map.

Shapes: ``v`` (B, D, h, w) visual features, ``a`` (B, D) audio embeddings, both L2-normalised
along D (so similarities are cosines / temperature). Row index i is the frame, column j the audio.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6


def similarity(v: torch.Tensor, a: torch.Tensor, temperature: float) -> torch.Tensor:
    """``S[i, j, h, w] = <v_i(h, w), a_j> / t`` -> (B, B, h, w). Differentiable in v and a."""
    return torch.einsum("ndhw,md->nmhw", v, a) / temperature


def contrastive_loss(v: torch.Tensor, a: torch.Tensor, temperature: float) -> torch.Tensor:
    """Multiple-instance InfoNCE: ``logit_ij = max_hw S_ij``, CE frame->audio and audio->frame.

    Matched pairs sit on the diagonal. The two directions are averaged (EZ-VSL sums them; only
    the scale differs). Returns a scalar; gradients reach v (through the max location) and a.
    """
    logits = similarity(v, a, temperature).flatten(2).amax(dim=2)  # (B, B)
    labels = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def localization_map(v: torch.Tensor, a: torch.Tensor, temperature: float,
                     size: int = 224) -> torch.Tensor:
    """``S_ii`` upsampled to (B, size, size) and min-max normalised per sample to [0, 1].

    Bilinear with ``align_corners=True`` as in EZ-VSL's test.py. Fully differentiable (the EPS in
    the denominator keeps a constant map finite), so BCE losses on it train both encoders.
    """
    s = torch.einsum("ndhw,nd->nhw", v, a).unsqueeze(1) / temperature  # (B, 1, h, w)
    s = F.interpolate(s, size=(size, size), mode="bilinear", align_corners=True).squeeze(1)
    lo = s.flatten(1).amin(dim=1).view(-1, 1, 1)
    hi = s.flatten(1).amax(dim=1).view(-1, 1, 1)
    return (s - lo) / (hi - lo + EPS)
