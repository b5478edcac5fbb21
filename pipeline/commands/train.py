"""Train DMT (stage 1 warm-up + stage 2) on Ray Train workers, tracked in MLflow.

When the config's data folder has no shards yet (the shipped synthetic configs), the benchmark is
synthesised and preprocessed first.
"""

from __future__ import annotations

import argparse

from pipeline.commands.common import add_config_arguments, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", metavar="RUN_OR_PATH",
                        help="continue a stopped run: its Ray run folder or MLflow run id")


def run(args: argparse.Namespace) -> int:
    from pipeline.train.driver import fit
    from pipeline.train.report import print_outcome

    cfg = load_config(args)  # validated before Ray or MLflow start
    outcome = fit(cfg, resume=args.resume)
    print_outcome(outcome)
    return 0
