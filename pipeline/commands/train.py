"""Train DMT (stage 1 warm-up + stage 2) on Ray Train workers, tracked in MLflow.

The config's dataset is prepared first (``pipeline.prepare``): when its shards folder is missing,
a synthetic config's benchmark is synthesised and preprocessed.
"""

from __future__ import annotations

import argparse

from pipeline.commands.common import add_config_arguments, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", metavar="RUN_OR_PATH",
                        help="continue a stopped run: its Ray run folder or MLflow run id")


def run(args: argparse.Namespace) -> int:
    from pipeline.engine.report import print_outcome
    from pipeline.prepare import prepare_dataset
    from pipeline.train.driver import fit, resumed_config

    cfg = load_config(args)  # validated before Ray or MLflow start
    prepare_dataset(resumed_config(args.resume, cfg) if args.resume else cfg)
    outcome = fit(cfg, resume=args.resume)
    print_outcome(outcome)
    return 0
