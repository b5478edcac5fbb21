"""Trivial and ideal predictors scored with the field's metric: what a layout allows.

This is a self-contained copy of the evaluation rule of reference/DMT.md section 4 (VGG-SS
ground truth, median threshold), used to check the synthetic layouts, not to evaluate models
(``pipeline.metrics`` does that). The rows it gives:

- ``oracle``: the sounding boxes' pixels ranked first, the rest in random order. Under the
  median rule this is the best any map can score (cIoU = ``2a`` for a box of area ``a < 0.5``).
- ``centre``: a map falling with distance from the centre (any such map selects the same
  central disc of half the frame).
- ``whole``: a constant map (everything selected; cIoU = the box area).
- ``largest``: the largest object's box ranked first (needs every object's box): how far the
  size of the objects alone would get a model.
- ``off_centre``: the box farthest from the centre (the lowest ``centre`` cIoU) ranked first:
  how far the sounders' off-centre placement alone would get a model.
"""

from __future__ import annotations

import numpy as np

EVAL_SIZE = 224


def gt_map(boxes: list[list[float]], size: int = EVAL_SIZE) -> np.ndarray:
    """VGG-SS ground truth: normalised boxes, clipped, ``int(coord * size)``, union set to 1."""
    gt = np.zeros((size, size), dtype=np.float32)
    for box in boxes:
        x0, y0, x1, y1 = (int(min(max(v, 0.0), 1.0) * size) for v in box)
        gt[y0:y1, x0:x1] = 1
    return gt


def ciou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Per-sample cIoU with the median rule: ``infer = pred >= sort(pred)[N // 2]``."""
    thr = np.sort(pred.ravel())[pred.size // 2]
    infer = pred >= thr
    return float((infer * gt).sum() / (gt.sum() + (infer * (gt == 0)).sum()))


def summarise(cious: list[float]) -> dict[str, float]:
    """CIoU (fraction with cIoU >= 0.5), AUC over t = 0, 0.05, ..., 1 (trapezoid) and mean."""
    values = np.asarray(cious, dtype=np.float64)
    ts = np.linspace(0, 1, 21)
    curve = np.array([(values >= t).mean() for t in ts])
    auc = float(((curve[1:] + curve[:-1]) / 2 * np.diff(ts)).sum())
    return {"ciou": float((values >= 0.5).mean()), "auc": auc, "mean": float(values.mean())}


def baseline_scores(annotations: list[dict], objects: list[list[list[float]]] | None = None,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """Score the baselines on VGG-SS style ``annotations`` (``{"bbox": [...]}`` each).

    ``objects``, if given, lists every object's box per clip (same order) for ``largest`` and
    ``off_centre``.
    """
    rng = np.random.default_rng(seed)
    c = (EVAL_SIZE - 1) / 2
    yy, xx = np.mgrid[0:EVAL_SIZE, 0:EVAL_SIZE]
    centre = -((xx - c) ** 2 + (yy - c) ** 2)
    whole = np.zeros((EVAL_SIZE, EVAL_SIZE))
    rows: dict[str, list[float]] = {"oracle": [], "centre": [], "whole": []}
    if objects is not None:
        rows["largest"], rows["off_centre"] = [], []
    for k, ann in enumerate(annotations):
        gt = gt_map(ann["bbox"])
        rows["oracle"].append(ciou(gt + 0.5 * rng.random(gt.shape), gt))
        rows["centre"].append(ciou(centre, gt))
        rows["whole"].append(ciou(whole, gt))
        if objects is not None:
            largest = max(objects[k], key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            outer = min(objects[k], key=lambda b: ciou(centre, gt_map([b])))
            for name, box in (("largest", largest), ("off_centre", outer)):
                rows[name].append(ciou(gt_map([box]) + 0.5 * rng.random(gt.shape), gt))
    return {name: summarise(values) for name, values in rows.items()}
