"""The main job on embedded defaults: synthesise a small benchmark, preprocess it with Ray Data,
train DMT with Ray Train on local CPU workers, evaluate, log everything to the local MLflow store,
and print the results beside the trivial predictors."""

from __future__ import annotations

import argparse
import time

from pipeline.commands.common import add_config_arguments, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # heavy (torch, Ray or MLflow): imported when the command runs, see pipeline/commands/__init__
    from pipeline.commands.outcome import print_outcome
    from pipeline.prepare import prepare_dataset
    from pipeline.train.driver import fit, fit_to_cluster

    cfg = load_config(args)
    t0 = time.perf_counter()
    fit_to_cluster(cfg)  # a run that cannot fit the cluster is refused before any work
    prepare_dataset(cfg)
    outcome = fit(cfg)
    print_outcome(outcome)
    print(f"demo wall time: {time.perf_counter() - t0:.0f} s")
    return 0
