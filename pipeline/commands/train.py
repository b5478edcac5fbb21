"""Train DMT (stage 1 warm-up + stage 2) on Ray Train workers, tracked in MLflow.

The config's dataset is prepared first (``pipeline.prepare``): when its shards folder is missing,
a synthetic config's benchmark is synthesised and preprocessed.
"""

from __future__ import annotations

import argparse

from pipeline import config as config_mod
from pipeline.commands.common import add_config_arguments, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", metavar="RUN_OR_PATH",
                        help="continue a stopped run: its Ray run folder or MLflow run id")
    add_register_arguments(parser, "the final model", "candidate")


def add_register_arguments(parser: argparse.ArgumentParser, what: str, alias: str) -> None:
    parser.add_argument("--register", metavar="NAME",
                        help=f"register {what} in MLflow's Model Registry as NAME")
    parser.add_argument("--alias", default=alias,
                        help=f"alias set on the registered version (default {alias}): "
                             f"`dmt localize --model models:/NAME@ALIAS`")


def check_register(args: argparse.Namespace) -> None:
    """A bad alias is refused before anything trains."""
    # heavy (torch, Ray or MLflow): imported when the command runs, see pipeline/commands/__init__
    from pipeline import tracking

    if args.register:
        try:
            tracking.check_alias(args.alias)
        except ValueError as exc:
            raise config_mod.ConfigError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    # heavy (torch, Ray or MLflow): imported when the command runs, see pipeline/commands/__init__
    from pipeline import tracking
    from pipeline.commands.outcome import print_outcome
    from pipeline.prepare import prepare_dataset
    from pipeline.train.driver import fit, fit_to_cluster, resumed_config

    cfg = load_config(args)  # validated before Ray or MLflow start
    check_register(args)
    run_cfg = resumed_config(args.resume, cfg) if args.resume else cfg
    fit_to_cluster(run_cfg)  # a run that cannot fit the cluster is refused before any work
    prepare_dataset(run_cfg)
    outcome = fit(cfg, resume=args.resume)
    print_outcome(outcome)
    if args.register:
        version = tracking.register_model(outcome.tracking_uri, outcome.run_id, args.register,
                                          args.alias)
        print(f"registered {args.register} version {version}: models:/{args.register}@"
              f"{args.alias}")
    return 0
