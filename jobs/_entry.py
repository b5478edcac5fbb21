"""Shared body of the Ray job entry points under ``jobs/`` (not a job itself).

Each ``jobs/<name>.py`` runs one ``dmt`` subcommand with the CLI's own argument parser and
``run()``, so ``ray job submit --working-dir . -- python jobs/train.py --config ...`` behaves like
``dmt train --config ...`` on the cluster the job runs in:

- the uploaded working dir (a copy of the repo) goes first on ``sys.path``, so the job runs the
  submitted code even where the package is installed from elsewhere (or not at all);
- Ray: ``ray.init()`` inside the commands joins the job's cluster (Ray sets ``RAY_ADDRESS`` for a
  job's driver; ``pipeline.train.driver.ensure_ray`` joins it when set);
- MLflow: ``$MLFLOW_TRACKING_URI`` (pass it in the job's runtime env; ``dmt submit`` does);
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _import_path() -> None:
    """The working dir's ``pipeline`` package before any installed copy."""
    if str(REPO) not in sys.path[:1]:
        sys.path.insert(0, str(REPO))


def main(command: str, argv: list[str] | None = None,
         extend: Callable[[argparse.ArgumentParser], None] | None = None,
         prepare: Callable[[argparse.Namespace], None] | None = None) -> int:
    """Parse ``argv`` with ``dmt <command>``'s parser and run it; return the exit status.

    ``extend`` adds job-only arguments; ``prepare`` adjusts the parsed arguments before the
    command runs (both may raise ``ConfigError``).
    """
    prog = f"jobs/{command}.py"
    argv = sys.argv[1:] if argv is None else argv
    _import_path()
    # Small machines: one Parquet footer reader instead of 32 (see RAY-NOTES).
    os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1")
    from pipeline.cli import COMMANDS
    from pipeline.config import ConfigError

    module_name, help_text = COMMANDS[command]
    mod = importlib.import_module(f"pipeline.commands.{module_name}")
    parser = argparse.ArgumentParser(prog=prog, description=mod.__doc__ or help_text)
    mod.add_arguments(parser)
    if extend is not None:
        extend(parser)
    args = parser.parse_args(argv)  # usage errors: argparse exits 2
    try:
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
