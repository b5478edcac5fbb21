"""The body of every Ray job entry point: one ``dmt`` subcommand, run as a job's driver.

``python -m pipeline.job_entry JOB ARGS`` (what ``dmt submit`` runs when the cluster has the
package installed) and ``python jobs/JOB.py ARGS`` (the repository's entry points, what it runs
with the repository uploaded as the working dir) behave like ``dmt JOB ARGS`` on the cluster the
job runs in:

- Ray: the commands call ``pipeline.ray_env.ensure_ray``, which joins the job's cluster (Ray sets
  ``RAY_ADDRESS`` for a job's driver);
- MLflow: ``$MLFLOW_TRACKING_URI`` (pass it in the job's runtime env; ``dmt submit`` does); runs
  are tagged with the job's submission id, which ``dmt jobs`` looks them up by;
- exit status: 0 on success, 2 for a bad config or arguments (before Ray starts), 1 for any
  other failure, with a one-line ``jobs/<name>.py: error: ...`` on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Callable

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
    from pipeline import config as config_mod

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
    from pipeline.cli import COMMANDS

    module_name, help_text = COMMANDS[job]
    mod = importlib.import_module(f"pipeline.commands.{module_name}")
    parser = argparse.ArgumentParser(prog=prog or f"jobs/{job}.py",
                                     description=mod.__doc__ or help_text)
    mod.add_arguments(parser)
    extend = HOOKS.get(job, (None, None))[0]
    if extend is not None:
        extend(parser)
    return parser


def main(job: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` with ``job``'s parser and run its command; return the exit status."""
    from pipeline.cli import COMMANDS
    from pipeline.config import ConfigError

    prog = prog or f"jobs/{job}.py"
    argv = sys.argv[1:] if argv is None else argv
    # Small machines: one Parquet footer reader instead of 32 (see RAY-NOTES).
    os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1")
    mod = importlib.import_module(f"pipeline.commands.{COMMANDS[job][0]}")
    args = job_parser(job, prog).parse_args(argv)  # usage errors: argparse exits 2
    try:
        prepare = HOOKS.get(job, (None, None))[1]
        if prepare is not None:
            prepare(args)
        return int(mod.run(args) or 0)
    except ConfigError as exc:
        print(f"{prog}: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the job's exit status is the report
        traceback.print_exc()
        print(f"{prog}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in JOBS:
        print(f"usage: python -m pipeline.job_entry {{{','.join(JOBS)}}} [ARGS...]",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2:], prog=f"pipeline.job_entry {sys.argv[1]}"))
