"""results.json rows -> per-row-kind statistics over seeds, and paired differences.

A row kind is ``(method, fraction, unlabeled)``: the variant, its labeled fraction (None for the
trivial predictors, 1.0 for the all-labeled bound) and its unlabeled pool as a multiple of the
labeled count (0: every other pool clip). Learned rows are aggregated as mean and sample
standard deviation over their seeds; two kinds are compared seed by seed (``paired``), with the
95% Student-t interval of the mean difference.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from scipy import stats as scipy_stats

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


@dataclass(frozen=True)
class Interval:
    """A paired difference in points over seeds: mean, sample sd, the 95% t-interval of the
    mean (NaN with one seed: no spread to build it from) and the per-seed values."""

    mean: float
    sd: float
    lo: float
    hi: float
    per_seed: dict[int, float]

    @property
    def n(self) -> int:
        return len(self.per_seed)

    def text(self) -> str:
        """``+7.3 [-4.1, +18.8]`` (one seed: ``+7.3``)."""
        if self.n < 2:
            return f"{self.mean:+.1f}"
        return f"{self.mean:+.1f} [{self.lo:+.1f}, {self.hi:+.1f}]"


def t_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (NaN, NaN for fewer than 2)."""
    if len(values) < 2:
        return math.nan, math.nan
    mean, sd = stats(values)
    half = scipy_stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * sd / math.sqrt(len(values))
    return mean - half, mean + half


@dataclass(frozen=True)
class Paired:
    """``method - reference`` seed by seed, under the median and the fixed rule."""

    median: Interval
    fixed: Interval

    @property
    def n(self) -> int:
        return self.median.n

    def text(self) -> str:
        return f"{self.median.text()} / {self.fixed.text()} ({self.n} seed{'s' * (self.n > 1)})"


def paired(rows: list[dict[str, Any]], method: Kind, reference: Kind) -> Paired | None:
    """``method - reference`` (row kinds) over the seeds both ran, in points: rows of one seed
    share their labeled clips and initialisation, so the spread is that of the difference,
    not of either row. None when no seed ran both."""
    def by_seed(want: Kind) -> dict[int, dict]:
        return {r["seed"]: r for r in rows if not r.get("error") and kind_of(r) == want}

    ours, ref = by_seed(method), by_seed(reference)
    seeds = sorted(set(ours) & set(ref))
    if not seeds:
        return None

    def interval(metric: str) -> Interval:
        diffs = {s: 100 * (ours[s][metric] - ref[s][metric]) for s in seeds}
        mean, sd = stats(list(diffs.values()))
        return Interval(mean, sd, *t_interval(list(diffs.values())), diffs)

    return Paired(interval("ciou"), interval("ciou_fixed"))


def paired_change(rows: list[dict[str, Any]], method: str, fraction: float,
                  reference: str = REFERENCE) -> Paired | None:
    """``method - reference`` at ``fraction`` labeled (every other pool clip unlabeled)."""
    return paired(rows, kind(method, fraction), kind(reference, fraction))
