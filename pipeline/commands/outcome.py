"""What `dmt train` and `dmt demo` print when a run ends: the results table and where
everything is (the MLflow run's link, the checkpoint, Ray's log files)."""

from __future__ import annotations

from pipeline import tracking
from pipeline.console import log_folder
from pipeline.engine.report import metrics_table


def print_outcome(outcome, say=print) -> None:
    """The results table, then where everything is: the run's link (the model-training view;
    for a local store, with the command that serves it), its checkpoint, Ray's log files."""
    say("")
    say(metrics_table(outcome.metrics))
    say("")
    say(f"MLflow run: {outcome.run_id}")
    say(f"open:       {tracking.run_link(outcome.tracking_uri, outcome.run_id)}")
    if outcome.checkpoint_path:
        say(f"checkpoint: {outcome.checkpoint_path}")
    if logs := log_folder():
        say(f"Ray logs:   {logs}")
