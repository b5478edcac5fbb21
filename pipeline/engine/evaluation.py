"""Evaluation of a training state on a split with ``pipeline.metrics`` (any Ray-free iterable).

Per-sample scores are kept as lists so that workers can gather them before summarising: the
field's CIoU is a fraction over samples, not a mean of per-worker fractions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from pipeline import metrics
from pipeline.dmt.step import predict_maps
from pipeline.methods import TRIVIAL, method_of

SCORES = ("ciou", "ciou_fixed", "mse")


def reported_role(method: str, wanted: str) -> str:
    """The role reported as the method's result (``dmt.eval_model``, mapped to what exists)."""
    return method_of(method).reported_role(wanted)


def score_batches(state, batches: Iterable[dict[str, Any]], to_device, roles=None
                  ) -> dict[str, dict[str, list[float]]]:
    """{role or trivial predictor: {"ciou": [...], "ciou_fixed": [...], "mse": [...]}}.

    ``batches`` hold ``frame``, ``audio`` and ``gt`` (B, 224, 224); ``to_device`` turns a batch
    into tensors on the state's device.
    """
    roles = roles or method_of(state.method).roles
    scores = {name: {s: [] for s in SCORES} for name in (*roles, *TRIVIAL)}
    for raw in batches:
        batch = to_device(raw)
        gts = batch["gt"].cpu().numpy()
        preds = {role: predict_maps(state, batch, role).cpu().numpy() for role in roles}
        preds.update(metrics.trivial_maps(gts))
        for name, maps in preds.items():
            for pred, gt in zip(maps, gts, strict=True):
                scores[name]["ciou"].append(metrics.ciou(pred, gt, "median"))
                scores[name]["ciou_fixed"].append(metrics.ciou(pred, gt, 0.5))
                scores[name]["mse"].append(metrics.map_mse(pred, gt))
    return scores


def merge_scores(parts: list[dict[str, dict[str, list[float]]]]) -> dict[str, dict[str, list]]:
    """Concatenate the per-sample lists gathered from several workers."""
    merged: dict[str, dict[str, list[float]]] = {}
    for part in parts:
        for name, lists in part.items():
            slot = merged.setdefault(name, {s: [] for s in lists})
            for key, values in lists.items():
                slot[key].extend(values)
    return merged


def summarize_scores(scores: dict[str, dict[str, list[float]]], prefix: str,
                     headline: str | None = None) -> dict[str, float]:
    """Flat metrics ``{prefix}/{name}/{ciou,auc,mean_ciou,ciou_fixed,...,ciou_both,mse}``; the
    ``headline`` role is repeated as ``{prefix}/{metric}`` (the number a sweep optimises)."""
    out: dict[str, float] = {}
    for name, lists in scores.items():
        if not lists["ciou"]:
            continue
        row = {**metrics.summarize_rules(lists["ciou"], lists["ciou_fixed"]),
               "mse": float(np.mean(lists["mse"])), "n": float(len(lists["ciou"]))}
        out.update({f"{prefix}/{name}/{k}": v for k, v in row.items()})
        if name == headline:
            out.update({f"{prefix}/{k}": v for k, v in row.items()})
    return out
