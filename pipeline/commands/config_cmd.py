"""Print the resolved config as YAML (after --set overrides), or list every key."""

from __future__ import annotations

import argparse

from pipeline import config as config_mod
from pipeline.commands.common import add_config_arguments, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--keys", action="store_true", help="list every dotted key and default")


def run(args: argparse.Namespace) -> int:
    if args.keys:
        for key, default, help_text in config_mod.describe_keys():
            print(f"{key:28s} {default!r:14s} {help_text}")
        return 0
    print(config_mod.dump_yaml(load_config(args)), end="")
    return 0
