"""The ``dmt`` command line: one entry point, one subcommand per stage of the pipeline."""

from __future__ import annotations

import argparse
import importlib
import sys

from pipeline import console
from pipeline.commands import COMMANDS
from pipeline.config import ConfigError
from pipeline.errors import (
    ClusterCapacityError,
    FolderLockedError,
    ShardsError,
    TrackingUnavailableError,
)


def _available() -> dict[str, tuple[str, str]]:
    """Commands whose module exists in this version of the package."""
    out = {}
    for name, (module, help_text) in COMMANDS.items():
        if importlib.util.find_spec(f"pipeline.commands.{module}") is not None:
            out[name] = (module, help_text)
    return out


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    parser = argparse.ArgumentParser(prog="dmt", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, (module, help_text) in _available().items():
        mod = importlib.import_module(f"pipeline.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=getattr(mod, "__doc__", None))
        mod.add_arguments(p)
        p.add_argument("--verbose", action="store_true",
                       help="also print Ray's, Ray Data's and MLflow's own logs and the "
                            "workers' output (default: in Ray's log files)")
        modules[name] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    console.configure(getattr(args, "verbose", False))
    mod = importlib.import_module(f"pipeline.commands.{modules[args.command]}")
    try:
        return int(mod.run(args) or 0)
    except ConfigError as exc:
        print(f"dmt {args.command}: config error: {exc}", file=sys.stderr)
        return 2
    except ShardsError as exc:  # bad shards: the file and the reason, before any training
        print(f"dmt {args.command}: shards error: {exc}", file=sys.stderr)
        return 2
    except FolderLockedError as exc:  # another live process writes the same folder
        print(f"dmt {args.command}: {exc}", file=sys.stderr)
        return 3
    except (TrackingUnavailableError, ClusterCapacityError) as exc:  # stopped, resumable
        print(f"dmt {args.command}: {exc}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
