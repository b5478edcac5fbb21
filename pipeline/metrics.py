"""The AVSL evaluation metric, exactly as the public EZ-VSL code computes it (docs/method.md §8).

Everything here is numpy; torch tensors are accepted and converted (detached, on the CPU).
Maps are 224x224 in the field; the functions generalise to any square size where that is
meaningful (the median index is ``pred.size // 2``, which is ``224 * 224 // 2`` at 224).

Reference points (EZ-VSL ``datasets.py`` / ``utils.py`` / ``test.py``):

- ground truth: ``bbox2gtmap`` (Flickr: sum of annotator boxes / 2, clipped at 1; VGG-SS: union);
- prediction: min-max normalised map, ``thr = sort(pred.flatten())[H * W // 2]``,
  ``infer = pred >= thr``;
- cIoU: ``sum(infer * gt) / (sum(gt) + sum(infer * (gt == 0)))``;
- CIoU (their "AP50") = fraction of samples with cIoU >= 0.5; AUC = ``sklearn.metrics.auc`` (the
  trapezoid rule) of the fraction with cIoU >= ``0.05 * i`` over ``0.05 * i``, i = 0..20.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pipeline.methods import CENTRE_BOX, ORACLE, WHOLE_IMAGE

SIZE = 224  # side of every evaluation map
FLICKR_GRID = 256  # Flickr-SoundNet boxes are annotated on a 256x256 grid
# EZ-VSL's thresholds are computed as 0.05 * i (not linspace) so float ties behave identically.
AUC_THRESHOLDS = np.array([0.05 * i for i in range(21)])


def _np(x: Any) -> np.ndarray:
    """numpy view of a numpy array, torch tensor (any device, grad or not) or nested list."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


# ----------------------------------------------------------------------------- ground truth

def gt_map(boxes: Iterable[Sequence[float]], fmt: str = "vggss", size: int = SIZE) -> np.ndarray:
    """Ground-truth map (size, size) float32 from boxes ``[xmin, ymin, xmax, ymax]``.

    ``fmt="vggss"``: normalised coordinates, clipped to [0, 1], times ``size``, truncated to int;
    the union of the boxes is 1 (out-of-range values such as -2.9e16 in vggss.json clip to 0).
    ``fmt="flickr"``: integer coordinates on a 256 grid, each truncated to int and scaled as
    ``int(size * v / 256)`` (EZ-VSL's order of operations); every box adds 1 over its rows and
    columns (end exclusive), then the map is halved and clipped at 1, so one annotator's box gives
    0.5 and the consensus of two or more gives 1.
    """
    out = np.zeros((size, size), dtype=np.float64)
    if fmt == "vggss":
        for box in boxes:
            xmin, ymin, xmax, ymax = (int(v) for v in np.clip(np.asarray(box, float), 0, 1) * size)
            out[ymin:ymax, xmin:xmax] = 1.0
    elif fmt == "flickr":
        for box in boxes:
            xmin, ymin, xmax, ymax = (int(size * int(v) / FLICKR_GRID) for v in box)
            out[ymin:ymax, xmin:xmax] += 1.0
        out = np.minimum(out / 2.0, 1.0)
    else:
        raise ValueError(f"gt_map: fmt must be 'vggss' or 'flickr', got {fmt!r}")
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- per-sample scores

def ciou(pred: Any, gt: Any, threshold: str | float = "median") -> float:
    """cIoU of one normalised map ``pred`` (H, W) against a gt map ``gt`` (H, W).

    ``threshold="median"``: ``thr = sort(pred.flatten())[pred.size // 2]`` (EZ-VSL); a float:
    that fixed threshold. ``infer = pred >= thr``. Returns
    ``sum(infer * gt) / (sum(gt) + sum(infer * (gt == 0)))``; when that denominator is 0 (empty
    gt and nothing inferred, only possible with a fixed threshold) it returns 0.0 instead of
    EZ-VSL's NaN, so one degenerate sample cannot turn a whole summary into NaN.
    """
    p = _np(pred)
    g = _np(gt).astype(np.float64)
    if p.shape != g.shape:
        raise ValueError(f"ciou: pred {p.shape} and gt {g.shape} differ in shape")
    if isinstance(threshold, str):
        if threshold != "median":
            raise ValueError(f"ciou: threshold must be 'median' or a number, got {threshold!r}")
        thr = np.sort(p.ravel())[p.size // 2]
    else:
        thr = float(threshold)
    infer = (p >= thr).astype(np.float64)
    denom = g.sum() + (infer * (g == 0)).sum()
    return float((infer * g).sum() / denom) if denom > 0 else 0.0


def map_mse(pred: Any, gt: Any) -> float:
    """Mean squared error between a normalised map and a gt map (our reading of DMT's MSE)."""
    p = _np(pred).astype(np.float64)
    g = _np(gt).astype(np.float64)
    if p.shape != g.shape:
        raise ValueError(f"map_mse: pred {p.shape} and gt {g.shape} differ in shape")
    return float(np.mean((p - g) ** 2))


# ----------------------------------------------------------------------------- dataset summaries

def summarize(cious: Iterable[float]) -> dict[str, float]:
    """``{"ciou", "auc", "mean_ciou"}`` of per-sample cIoUs.

    ``ciou``: fraction of samples with cIoU >= 0.5 (the papers' "CIoU"). ``auc``: trapezoid area
    under ``t -> fraction(cIoU >= t)`` at t = 0.05 * i, i = 0..20 (x spans [0, 1]), which is what
    ``sklearn.metrics.auc`` returns in EZ-VSL. ``mean_ciou``: the plain mean.
    """
    c = np.asarray(list(cious), dtype=np.float64)
    if c.size == 0:
        raise ValueError("summarize: no cIoU values (empty test set?)")
    frac = np.array([(c >= t).mean() for t in AUC_THRESHOLDS])
    return {
        "ciou": float((c >= 0.5).mean()),
        "auc": float(np.trapezoid(frac, AUC_THRESHOLDS)),
        "mean_ciou": float(c.mean()),
    }


def summarize_rules(median_cious: Iterable[float], fixed_cious: Iterable[float]
                    ) -> dict[str, float]:
    """``summarize`` of both threshold rules' per-sample cIoUs: ``ciou, auc, mean_ciou`` (median
    rule), the same with the suffix ``_fixed``, and ``ciou_both``, the smaller of ``ciou`` and
    ``ciou_fixed``. The median rule reads only how a map ranks its pixels, the fixed rule also
    its level; a map scores high on ``ciou_both`` only when it does both, which is what a sweep
    should maximise when a setting can win one rule by giving up the other."""
    med, fix = summarize(median_cious), summarize(fixed_cious)
    return {**med, **{f"{k}_fixed": v for k, v in fix.items()},
            "ciou_both": min(med["ciou"], fix["ciou"])}


def evaluate_maps(preds: Any, gts: Any, fixed_threshold: float = 0.5) -> dict[str, float]:
    """All metrics of normalised maps ``preds`` (N, H, W) against gt maps ``gts`` (N, H, W).

    Keys: ``ciou, auc, mean_ciou`` (median rule, the published metric), the same with the suffix
    ``_fixed`` (``pred >= fixed_threshold``), ``ciou_both`` (the smaller CIoU of the two rules),
    ``mse`` (mean over samples of ``map_mse``) and ``n`` (number of samples).
    """
    p, g = _np(preds), _np(gts)
    if p.ndim != 3 or p.shape != g.shape:
        raise ValueError(f"evaluate_maps: expected two (N, H, W) arrays, got {p.shape}, {g.shape}")
    out = summarize_rules([ciou(pi, gi) for pi, gi in zip(p, g, strict=True)],
                          [ciou(pi, gi, fixed_threshold) for pi, gi in zip(p, g, strict=True)])
    out["mse"] = float(np.mean([map_mse(pi, gi) for pi, gi in zip(p, g, strict=True)]))
    out["n"] = float(len(p))
    return out


# ----------------------------------------------------------------------------- trivial predictors

def whole_image_map(size: int = SIZE) -> np.ndarray:
    """Every pixel 1: both threshold rules then select the whole frame."""
    return np.ones((size, size), dtype=np.float32)


def centre_box_map(frac: float = 0.5, size: int = SIZE) -> np.ndarray:
    """A centre prior: a square pyramid peaking at 1 in the centre, in [0, 1].

    Value ``1 - d / (frac * size)`` (clipped at 0), with ``d`` the Chebyshev distance of the pixel
    centre from the image centre; so the fixed 0.5 threshold selects exactly the centred box of
    side ``frac * size`` (frac=0.5: half the side, 25% of the area), and the median rule selects
    the centred square holding half the pixels. A flat binary box would not work: under the median
    rule its ties at 0 would select the whole image whenever the box is below 50% area.
    """
    coords = np.arange(size) + 0.5 - size / 2.0
    d = np.maximum(np.abs(coords)[:, None], np.abs(coords)[None, :])
    return np.clip(1.0 - d / (frac * size), 0.0, 1.0).astype(np.float32)


def oracle_map(gt: Any, eps: float = 1e-3) -> np.ndarray:
    """The gt map with box pixels ranked first: ``min(gt + eps * r, 1)``.

    ``r`` in [0, 1) is a fixed raster ramp that makes every background value distinct, so the
    median rule selects all box pixels and then exactly enough background to reach half the
    pixels (which background pixels does not change the cIoU). Consensus pixels (1) rank above
    single-annotator pixels (0.5) above background; the fixed 0.5 rule selects exactly gt >= 0.5.
    """
    g = _np(gt).astype(np.float64)
    ramp = np.arange(g.size, dtype=np.float64).reshape(g.shape) / g.size
    return np.minimum(g + eps * ramp, 1.0).astype(np.float32)


def trivial_maps(gts: np.ndarray) -> dict[str, np.ndarray]:
    """The trivial predictors' maps for ground-truth maps ``gts`` (N, H, W): whole image and
    centre box (the same map for every clip, broadcast to (N, H, W)) and the oracle (from each
    clip's own truth), keyed by their names in the method table (``methods.TRIVIAL``)."""
    gts = np.asarray(gts)
    size = gts.shape[-1]
    return {WHOLE_IMAGE: np.broadcast_to(whole_image_map(size), gts.shape),
            CENTRE_BOX: np.broadcast_to(centre_box_map(size=size), gts.shape),
            ORACLE: np.stack([oracle_map(g) for g in gts])}


# ----------------------------------------------------------------------------- ranking

def auroc(scores: Any, positive: Any) -> float:
    """Area under the ROC curve of ``scores`` (N,) for the bool labels ``positive`` (N,): the
    probability that a positive scores above a negative, ties counted half (Mann-Whitney U over
    n_pos * n_neg pairs). NaN when either class is empty (the ranking is undefined)."""
    s, y = _np(scores).astype(np.float64).ravel(), _np(positive).astype(bool).ravel()
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (len(pos) * len(neg)))
