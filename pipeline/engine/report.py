"""Plain-text result tables for the terminal (`dmt train`, `dmt evaluate`, `dmt demo`)."""

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


def print_outcome(outcome, say=print) -> None:
    """The results table, then where everything is: the run's link (the model-training view;
    for a local store, with the command that serves it), its checkpoint, Ray's log files."""
    from pipeline.console import log_folder
    from pipeline.tracking import run_link

    say("")
    say(metrics_table(outcome.metrics))
    say("")
    say(f"MLflow run: {outcome.run_id}")
    say(f"open:       {run_link(outcome.tracking_uri, outcome.run_id)}")
    if outcome.checkpoint_path:
        say(f"checkpoint: {outcome.checkpoint_path}")
    if logs := log_folder():
        say(f"Ray logs:   {logs}")
