"""What `dmt train` and `dmt demo` print when a run ends: the results table and where
everything is (the MLflow run's link, the checkpoint, Ray's log files)."""

from __future__ import annotations

from pipeline import tracking
from pipeline.console import log_folder
from pipeline.engine.report import metrics_table


def print_outcome(outcome, say=print) -> None:
    """The run's model's results table (the checkpoint chosen on the validation split, scored on
    the test split), which epoch it is, then where everything is: the run's link (the
    model-training view; for a local store, with the command that serves it), the last
    checkpoint, Ray's log files."""
    say("")
    say(metrics_table(outcome.model_metrics or outcome.metrics))
    say("")
    if outcome.model_epoch is not None:
        say(f"model:      {_model_line(outcome)}")
    say(f"MLflow run: {outcome.run_id}")
    say(f"open:       {tracking.run_link(outcome.tracking_uri, outcome.run_id)}")
    if outcome.checkpoint_path:
        say(f"checkpoint: {outcome.checkpoint_path} (last epoch; --resume continues it)")
    if logs := log_folder():
        say(f"Ray logs:   {logs}")


def _model_line(outcome) -> str:
    """Which epoch the run's model (the table above, logged and registrable) comes from."""
    total = int(outcome.metrics.get("epoch", outcome.model_epoch))
    where = f"epoch {outcome.model_epoch} of {total}"
    if not outcome.selected_by:
        return f"{where} (the last); the table is its test split"
    value = outcome.model_metrics[outcome.selected_by]
    return (f"{where}, the best {outcome.selected_by} ({value:.3f}); the table is its test "
            f"split")
