"""Argument helpers shared by the subcommands that take a config."""

from __future__ import annotations

import argparse

from pipeline import config as config_mod


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config under jobs/configs/ (default: built-ins)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a dotted key; repeatable")


def load_config(args: argparse.Namespace) -> config_mod.Config:
    """Load and validate; raises ConfigError before any work starts."""
    return config_mod.load(args.config, args.overrides)
