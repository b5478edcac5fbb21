"""results.json rows -> per-row-kind statistics over seeds, and paired differences.

A row kind is ``(method, fraction, unlabeled)``: the variant, its labeled fraction (None for the
trivial predictors, 1.0 for the all-labeled bound) and its unlabeled pool as a multiple of the
labeled count (0: every other pool clip). Learned rows are aggregated as mean and sample
standard deviation over their seeds.
"""

from __future__ import annotations

import statistics
from typing import Any

from pipeline.methods import REFERENCE, VARIANTS

Kind = tuple[str, float | None, float]
METRICS = ("ciou", "ciou_fixed", "auc", "mean_ciou", "mse")


def stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def kind_of(row: dict[str, Any]) -> Kind:
    frac = None if row["fraction"] is None else round(row["fraction"], 6)
    return row["method"], frac, float(row.get("unlabeled") or 0.0)


def kind(method: str, fraction: float | None, unlabeled: float = 0.0) -> Kind:
    """The row kind of ``method`` at ``fraction`` (the all-labeled bound is at 1.0 whatever
    ``fraction`` says)."""
    if fraction is not None and method in VARIANTS and VARIANTS[method].labels == "all":
        fraction = 1.0
    return method, None if fraction is None else round(fraction, 6), float(unlabeled)


def aggregate(rows: list[dict[str, Any]]) -> dict[Kind, dict[str, Any]]:
    """kind -> {"n", "labeled", "unlabeled_clips", metric: (mean, std), "train_cpu_s"}."""
    groups: dict[Kind, list[dict]] = {}
    for r in rows:
        if not r.get("error"):
            groups.setdefault(kind_of(r), []).append(r)
    out = {}
    for key, rs in groups.items():
        agg: dict[str, Any] = {"n": len(rs), "labeled": rs[0]["labeled"],
                               "unlabeled_clips": rs[0].get("unlabeled_clips")}
        for m in METRICS:
            agg[m] = stats([r[m] for r in rs])
        agg["train_cpu_s"] = stats([r.get("train_cpu_s") or 0.0 for r in rs])
        out[key] = agg
    return out


def paired_change(rows: list[dict[str, Any]], method: str, fraction: float,
                  reference: str = REFERENCE) -> tuple[float, float, float, int] | None:
    """(mean, sd) of ``method - reference`` in points over the seeds both ran, median rule,
    then the fixed rule's mean, and the seed count: rows are compared seed by seed, so the
    spread is that of the difference, not of either row."""
    def by_seed(name: str) -> dict[int, dict]:
        want = kind(name, fraction)
        return {r["seed"]: r for r in rows if not r.get("error") and kind_of(r) == want}

    ours, ref = by_seed(method), by_seed(reference)
    seeds = sorted(set(ours) & set(ref))
    if not seeds:
        return None
    med, spread = stats([100 * (ours[s]["ciou"] - ref[s]["ciou"]) for s in seeds])
    fix = statistics.fmean(100 * (ours[s]["ciou_fixed"] - ref[s]["ciou_fixed"]) for s in seeds)
    return med, spread, fix, len(seeds)
