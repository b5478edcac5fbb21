"""Sweep DMT's binarisation threshold, consensus threshold and EMA decay with Ray Tune.

Every trial is a full DMT run on Ray Train, selected on a validation split carved from the
labeled ids (never the test split); ASHA stops weak trials early. The best trial's final
checkpoint is then evaluated on the test split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import config as config_mod
from pipeline.commands.common import add_config_arguments, load_config
from pipeline.commands.train import add_register_arguments, check_register
from pipeline.engine.report import metrics_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--samples", type=int, default=4, help="number of trials (default 4)")
    parser.add_argument("--space", help="YAML search space over dotted keys (default: "
                        "dmt.delta, dmt.tau, dmt.ema_decay)")
    parser.add_argument("--best-out", help="write the best trial's full config here (YAML that "
                        "`dmt train --config` accepts)")
    parser.add_argument("--resume", action="store_true",
                        help="continue this config's latest interrupted sweep")
    add_register_arguments(parser, "the best trial's final model", "champion")


def run(args: argparse.Namespace) -> int:
    # heavy (torch, Ray or MLflow): imported when the command runs, see pipeline/commands/__init__
    from pipeline import tracking
    from pipeline.tune.space import load_space
    from pipeline.tune.sweep import SweepInterrupted, run_sweep

    cfg = load_config(args)
    check_register(args)
    if args.samples < 1:
        raise config_mod.ConfigError(f"--samples: {args.samples} must be >= 1")
    if not args.resume:
        load_space(args.space, cfg)  # fail on a bad space before Ray or MLflow start
    try:
        out = run_sweep(cfg, args.samples, args.space, resume=args.resume,
                        register=(args.register, args.alias) if args.register else None)
    except SweepInterrupted as exc:
        print(f"dmt tune: {exc}", file=sys.stderr)
        return 130
    print(f"\n{'trial':18s} {'status':14s} {'epochs':>6s} {'objective':>10s}  values")
    for row in out.trials:
        values = ", ".join(f"{k}={v:.4g}" for k, v in row["values"].items())
        print(f"{row['trial_id']:18s} {row['status']:14s} {row['epochs']:6d} "
              f"{row['objective']:10.3f}  {values}")
    print(f"\nbest trial {out.best_trial}: {cfg.tune.objective} = {out.best_value:.3f}")
    print(f"epochs run {out.epochs_run} of {out.epochs_full} "
          f"({1 - out.epochs_run / max(out.epochs_full, 1):.0%} saved by early stopping and "
          f"a shared warm-up)")
    if out.test_metrics:
        print("best trial's final checkpoint on the test split:")
        print(metrics_table(out.test_metrics, "test"))
    if args.best_out:
        Path(args.best_out).write_text(config_mod.dump_yaml(out.best_config))
        print(f"best config written to {args.best_out}")
    if out.registered:
        print(f"best trial's model registered: {out.registered}")
    print(f"MLflow parent run: {out.parent_run_id}; sweep folder {out.path}")
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    print(f"open:       {tracking.run_link(uri, out.parent_run_id)}")
    return 0
