"""Evaluate a checkpoint on preprocessed shards: CIoU / AUC / mean cIoU / MSE under the median
and the fixed 0.5 rule, for every model of the checkpoint and the trivial predictors. The
checkpoint may be a registered or logged MLflow model (models:/<name>@<alias>, runs:/<id>/model),
fetched like `dmt localize --model` does. The table is logged to MLflow as an evaluation run,
linked to that model and to the scored dataset (``--no-log``: not logged)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.engine.report import metrics_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "--checkpoint", dest="model", required=True,
                        help="a state.pt file or a folder holding one, or models:/<name>@<alias>,"
                             " models:/<name>/<version>, runs:/<id>/model")
    parser.add_argument("--data", required=True, help="the shards folder of `dmt preprocess`")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--out", help="JSON file for the results (default: print only)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tracking-uri", default="",
                        help="MLflow store for runs:/ and models:/ URIs and for the evaluation "
                             "run (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the evaluation to MLflow (by default a run 'evaluate "
                             "SPLIT' holds the table, its metrics linked to the model and the "
                             "dataset, so the model's page lists them)")


def run(args: argparse.Namespace) -> int:
    # heavy (torch, Ray or MLflow): imported when the command runs, see pipeline/commands/__init__
    from pipeline.checkpoint_uri import evaluate_checkpoint
    from pipeline.localize import LocalizeError

    try:
        result = evaluate_checkpoint(args.model, args.data, args.split, args.batch_size,
                                     tracking_uri=args.tracking_uri)
    except LocalizeError as exc:  # a checkpoint or model URI that cannot be fetched or read
        print(f"dmt evaluate: {exc}", file=sys.stderr)
        return 1
    print(f"{result['method']} checkpoint at epoch {result['epoch']} (step {result['step']}); "
          f"reported model: {result['reported']}; split {args.split}")
    print(metrics_table(result["metrics"], args.split))
    if not args.no_log:
        _log(args, result)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return 0


def _log(args: argparse.Namespace, result: dict) -> None:
    """The table as an MLflow evaluation run, linked to the model (an MLflow model URI) and to
    the scored split of the shards as a dataset."""
    from pipeline import tracking
    from pipeline.data.reader import load_summary

    uri = tracking.resolve_tracking_uri(args.tracking_uri)
    run_id, model_id = tracking.log_evaluation(
        uri, args.model, str(args.data), load_summary(args.data), args.split, result["metrics"],
        {"evaluate.checkpoint_epoch": result["epoch"], "evaluate.method": result["method"]})
    linked = f", its metrics linked to model {model_id}" if model_id else ""
    print(f"MLflow: evaluation run {run_id}{linked}: {tracking.run_link(uri, run_id)}")
