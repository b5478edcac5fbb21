"""Evaluate a checkpoint on preprocessed shards: CIoU / AUC / mean cIoU / MSE under the median
and the fixed 0.5 rule, for every model of the checkpoint and the trivial predictors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True,
                        help="a state.pt file or a folder holding one (Ray or MLflow checkpoint)")
    parser.add_argument("--data", required=True, help="the shards folder of `dmt preprocess`")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--out", help="JSON file for the results (default: print only)")
    parser.add_argument("--batch-size", type=int, default=32)


def run(args: argparse.Namespace) -> int:
    from pipeline.engine.offline import evaluate_checkpoint
    from pipeline.engine.report import metrics_table

    result = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.batch_size)
    print(f"{result['method']} checkpoint at epoch {result['epoch']} (step {result['step']}); "
          f"reported model: {result['reported']}; split {args.split}")
    print(metrics_table(result["metrics"], args.split))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return 0
