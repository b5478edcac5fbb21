"""Plain-text result tables for the terminal (`dmt train`, `evaluate`, `demo`, `tune`)."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.methods import ROLES, TRIVIAL

COLUMNS = ("ciou", "auc", "mean_ciou", "ciou_fixed", "auc_fixed", "mse")
# models first (teachers' mean, the reported DMT result, on top), then the trivial predictors
ORDER = (*ROLES, *TRIVIAL)


def metrics_table(metrics: dict[str, float], prefix: str = "test",
                  names: Iterable[str] | None = None) -> str:
    """Rows ``{prefix}/{name}/{column}`` of ``metrics`` as an aligned table."""
    if names is None:
        found = {k.split("/")[1] for k in metrics
                 if k.startswith(prefix + "/") and k.count("/") == 2}
        names = [n for n in ORDER if n in found] + sorted(found - set(ORDER))
    lines = [f"{'model':14s} " + " ".join(f"{c:>10s}" for c in COLUMNS)]
    for name in names:
        cells = [metrics.get(f"{prefix}/{name}/{c}") for c in COLUMNS]
        if all(c is None for c in cells):
            continue
        lines.append(f"{name:14s} " + " ".join(
            f"{c:10.3f}" if c is not None else f"{'-':>10s}" for c in cells))
    return "\n".join(lines)
