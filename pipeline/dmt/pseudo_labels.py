"""Pseudo-labels from the teachers: their maps of the weak view, binarised, filtered by
consensus and intersected (docs/method.md §5.1-5.4), and the monitors of their quality (§5.7).
Everything here runs without gradients."""

from __future__ import annotations

from typing import Any

import torch

from pipeline.dmt.augment import weak_view
from pipeline.dmt.filtering import binarize, consensus_iou, noise_filter
from pipeline.dmt.ipl import intersect
from pipeline.dmt.state import DMTState
from pipeline.dmt.students import audio_inputs
from pipeline.metrics import SIZE, auroc
from pipeline.models.heads import localization_map

NAN = float("nan")
GOOD_IOU = 0.5  # a pseudo-label is good when its IoU with the clip's box reaches this


@torch.no_grad()
def teacher_maps(state: DMTState, batch: dict[str, Any],
                 inputs: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Each teacher's normalised map (B, 224, 224) of the weak view, eval mode, no gradients.
    ``inputs``: precomputed front-end outputs per pair (``audio_inputs``), else computed here."""
    if not state.teachers:
        return []
    frames, temp = weak_view(batch["frame"]), state.model_cfg.temperature
    inputs = inputs if inputs is not None else audio_inputs(state, batch["audio"])
    out = []
    for teacher, x in zip(state.teachers, inputs, strict=True):
        teacher.eval()
        with state.autocast():
            v, a = teacher(frames, x, audio_is_input=True)
        out.append(localization_map(v.float(), a.float(), temp, SIZE))  # maps in float32
    return out


def make_pseudo_labels(maps: list[torch.Tensor], cfg
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Teacher maps -> (label (B, H, W) bool, keep (B,) bool, consensus IoU (B,) or None).

    Two teachers (DMT): M = P >= delta per teacher; keep iff IoU(M_A, M_B) >= tau (all kept
    when ``cfg.noise_filtering`` is off); label = M_A AND M_B (teacher A's M_A when ``cfg.ipl``
    is off). One teacher (mean teacher): its M, every sample kept, no IoU.
    ``cfg.tau_quantile`` q > 0 (beyond the paper): the threshold is the larger of tau and the
    batch's q-quantile of IoU (linear interpolation), so the filter keeps at most about the top
    1 - q of a batch however much the teachers agree.
    """
    masks = [binarize(p, cfg.delta) for p in maps]
    if len(masks) == 1:
        return masks[0], torch.ones(len(masks[0]), dtype=torch.bool, device=masks[0].device), None
    iou = consensus_iou(masks[0], masks[1])
    tau = cfg.tau
    if cfg.tau_quantile > 0:
        tau = max(tau, float(torch.quantile(iou, cfg.tau_quantile)))
    keep = noise_filter(iou, tau) if cfg.noise_filtering else torch.ones_like(iou).bool()
    label = intersect(masks[0], masks[1]) if cfg.ipl else masks[0]
    return label, keep, iou


@torch.no_grad()
def pseudo_label_stats(label: torch.Tensor, keep: torch.Tensor, iou: torch.Tensor | None,
                       true_map: torch.Tensor | None, has_truth: torch.Tensor | None = None
                       ) -> dict[str, float]:
    """Monitoring only (never in a loss): kept/filtered counts, mean consensus IoU, mean area of
    kept pseudo-labels and, given the truth ``true_map`` (B, H, W), the pseudo-labels' IoU with
    it over kept and over all samples (the paper's Fig. 5(a)), over the kept samples the mean
    ratio of a pseudo-label's area to its box's (``area_ratio_kept``), the share of good
    pseudo-labels (IoU with the box >= 0.5) over all and over kept samples
    (``pseudo_good_all``/``_kept``) and how well the consensus IoU ranks good above bad ones
    (``consensus_auroc``: 0.5 is a filter that keeps at random, 1 one that keeps every good
    pseudo-label before any bad one; NaN when the batch has only one kind). ``has_truth`` (B,)
    bool limits those to the rows that really carry boxes."""
    n_kept = int(keep.sum())
    stats = {
        "kept": float(n_kept), "filtered": float(len(keep) - n_kept),
        "consensus_iou": float(iou.mean()) if iou is not None else NAN,
        "pseudo_area": float(label[keep].float().mean()) if n_kept else NAN,
    }
    if true_map is not None:
        rows = has_truth.bool() if has_truth is not None else torch.ones_like(keep)
        truth = true_map >= 0.5
        piou = consensus_iou(label, truth)
        stats["pseudo_iou_all"] = float(piou[rows].mean()) if rows.any() else NAN
        stats["pseudo_iou_kept"] = float(piou[rows & keep].mean()) if (rows & keep).any() else NAN
        # a pseudo-label smaller than the box it should cover (IPL's intersection shrinks it)
        # teaches maps that a fixed threshold cuts too small: its area over the box's
        sel = rows & keep
        ratio = label[sel].flatten(1).sum(1) / truth[sel].flatten(1).sum(1).clamp_min(1)
        stats["area_ratio_kept"] = float(ratio.double().mean()) if sel.any() else NAN
        good = piou >= GOOD_IOU
        stats["pseudo_good_all"] = float(good[rows].double().mean()) if rows.any() else NAN
        stats["pseudo_good_kept"] = float(good[sel].double().mean()) if sel.any() else NAN
        stats["consensus_auroc"] = auroc(iou[rows], good[rows]) if iou is not None else NAN
    return stats


NO_PSEUDO = {"kept": 0.0, "filtered": 0.0, "consensus_iou": NAN, "pseudo_area": NAN}
