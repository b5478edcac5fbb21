"""The arguments of a command run as a Ray job (``jobs/<JOB>.py``, ``python -m
pipeline.job_entry``): the command's own parser with the job-only additions. `dmt submit` parses
a job's arguments with it before anything is uploaded."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from pipeline import config as config_mod
from pipeline.commands import COMMANDS

JOBS = ("preprocess", "train", "tune", "evaluate", "demo")


def evaluate_extend(parser: argparse.ArgumentParser) -> None:
    """``evaluate`` as a job: ``--data`` may come from ``--config``/``--set`` instead."""
    for action in parser._actions:  # noqa: SLF001 - argparse has no public way to relax it
        if action.dest == "data":
            action.required = False
    parser.add_argument("--config", help="config whose data.shards is the default --data")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a dotted key; repeatable")


def evaluate_prepare(args: argparse.Namespace) -> None:
    if args.config or args.overrides:
        cfg = config_mod.load(args.config, args.overrides)  # ConfigError: exit 2
        if not args.data:
            args.data = str(config_mod.data_paths(cfg.data).shards)
    if not args.data:
        raise config_mod.ConfigError("--data: give the shards folder, or --config/--set whose "
                                     "data.shards (default ROOT/shards) names it")


# job -> (extend the parser, adjust the parsed arguments)
HOOKS: dict[str, tuple[Callable | None, Callable | None]] = {
    "evaluate": (evaluate_extend, evaluate_prepare)}


def job_parser(job: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``job``: its command's, with the job-only additions."""
    module_name, help_text = COMMANDS[job]
    mod = importlib.import_module(f"pipeline.commands.{module_name}")
    parser = argparse.ArgumentParser(prog=prog or f"jobs/{job}.py",
                                     description=mod.__doc__ or help_text)
    mod.add_arguments(parser)
    extend = HOOKS.get(job, (None, None))[0]
    if extend is not None:
        extend(parser)
    return parser


def prepare_job_args(job: str, args: argparse.Namespace) -> None:
    """The job-only adjustments of the parsed arguments (ConfigError for a bad config)."""
    prepare = HOOKS.get(job, (None, None))[1]
    if prepare is not None:
        prepare(args)
