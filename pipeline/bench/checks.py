"""What the benchmark is checked against: the calibration (is the task hard for few labels and
learnable from many, with methods other than DMT) and the target (DMT's goal).

Both are measurements printed in the report, not test thresholds: a row says what was measured,
the goal, and whether it was met.
"""

from __future__ import annotations

from typing import Any

from pipeline.bench.aggregate import kind, paired_change
from pipeline.methods import (
    ALL_LABELS,
    CENTRE_BOX,
    FEW_LABELS,
    ORACLE,
    REFERENCE,
    TABLES,
    VARIANTS,
    WHOLE_IMAGE,
)

# Calibration (before any semi-supervised method is compared): the metric's ceiling and floor,
# and a supervised learner that needs the labels.
ORACLE_MIN, TRIVIAL_MAX = 0.90, 0.10  # median rule
ALL_LABELED_MIN, FEW_LABELS_GAP = 0.85, 30.0  # median rule; gap in points
# Target: DMT's lead over the compute-matched pair (median rule, points; with the 95% intervals
# of both rules above 0), the least an ablation costs (median rule, 3-seed mean; points), the
# share of the all-labeled bound.
TARGET_LEAD = 10.0
ABLATION_MIN_COST = 2.0
BOUND_SHARE = 0.90


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _mean(agg: dict, name: str, fraction: float | None, metric: str = "ciou"
          ) -> float | None:
    a = agg.get(kind(name, fraction))
    return None if a is None else a[metric][0]


def calibration(agg: dict, fraction: float) -> list[tuple[str, str, str, str]]:
    """(check, measured, goal, met) rows of the calibration table."""
    out = []
    for name, goal in ((ORACLE, f">= {ORACLE_MIN:.2f}"), (WHOLE_IMAGE, f"<= {TRIVIAL_MAX:.2f}"),
                       (CENTRE_BOX, f"<= {TRIVIAL_MAX:.2f}")):
        v = _mean(agg, name, None)
        if v is not None:
            ok = v >= ORACLE_MIN if name == ORACLE else v <= TRIVIAL_MAX
            out.append((f"{name.replace('_', ' ')}, CIoU (median rule)", f"{v:.3f}", goal,
                        _met(ok)))
    full = _mean(agg, ALL_LABELS, 1.0)
    if full is not None:
        out.append(("supervised, all labeled, CIoU", f"{full:.3f}", f">= {ALL_LABELED_MIN:.2f}",
                    _met(full >= ALL_LABELED_MIN)))
    few = _mean(agg, FEW_LABELS, fraction)
    if few is not None:
        out.append((f"supervised, {100 * fraction:g}% labeled, CIoU", f"{few:.3f}", "-", "-"))
    if few is not None and full is not None:
        gap = 100 * (full - few)
        out.append((f"all labeled - {100 * fraction:g}% labeled (points)", f"{gap:+.1f}",
                    f">= {FEW_LABELS_GAP:.0f}", _met(gap >= FEW_LABELS_GAP)))
    return out


def calibration_table(agg: dict, fraction: float) -> str:
    lines = ["| check | measured | goal | |", "| --- | --: | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in calibration(agg, fraction)]
    return "\n".join(lines)


def target_check(agg: dict, fraction: float, rows: list[dict[str, Any]]) -> list[str]:
    """The goal, measured: DMT's lead over each baseline, what each ablation costs, the share
    of the all-labeled bound."""
    dmt = agg.get(kind(REFERENCE, fraction))
    if dmt is None:
        return ["- DMT was not run."]
    out = []
    for name in (n for n, v in VARIANTS.items() if v.baseline):
        lead = paired_change(rows, REFERENCE, fraction, reference=name)
        if lead is None:
            continue
        verdict = "no goal"
        if VARIANTS[name].matches == REFERENCE:
            met = (lead.median.mean >= TARGET_LEAD and lead.median.lo > 0
                   and lead.fixed.lo > 0)
            verdict = (f"goal >= +{TARGET_LEAD:g} (median) with both intervals above 0: "
                       f"{_met(met)}")
        out.append(f"- DMT vs {VARIANTS[name].label}: {lead.text()} points (median / fixed "
                   f"rule, mean [95% interval]); {verdict}")
    for name in (*TABLES["B"][1:], *TABLES["D"][1:]):
        change = paired_change(rows, name, fraction)
        if change is not None:
            verdict = (f"goal: costs >= {ABLATION_MIN_COST:g} (median rule) over 3 seeds: "
                       f"{_met(change.n >= 3 and -change.median.mean >= ABLATION_MIN_COST)}"
                       if name in TABLES["B"] else "no goal")
            out.append(f"- {VARIANTS[name].label} − DMT: {change.text()} points (median / "
                       f"fixed); {verdict}")
    upper = agg.get(kind(ALL_LABELS, 1.0))
    if upper is not None and min(upper["ciou"][0], upper["ciou_fixed"][0]) > 0:
        r_med = dmt["ciou"][0] / upper["ciou"][0]
        r_fix = dmt["ciou_fixed"][0] / upper["ciou_fixed"][0]
        out.append(f"- DMT reaches {100 * r_med:.1f}% (median) / {100 * r_fix:.1f}% (fixed) of "
                   f"the all-labeled upper bound (goal {100 * BOUND_SHARE:.0f}%): "
                   f"{_met(r_med >= BOUND_SHARE and r_fix >= BOUND_SHARE)}")
    return out
