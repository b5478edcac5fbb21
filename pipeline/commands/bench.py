"""Benchmarks. ``dmt bench quality``: train and evaluate DMT, its baselines and ablations on one
synthetic benchmark (Tables A, B, C), track every row in MLflow, write DIR/results.json and
DIR/report.md with plots. ``--quick`` is a reduced version (under 20 minutes on 2 cores)."""

from __future__ import annotations

import argparse

from pipeline import config as config_mod


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    q = sub.add_parser("quality", help="DMT against baselines and ablations (Tables A, B, C)")
    q.add_argument("--quick", action="store_true",
                   help="reduced benchmark (jobs/configs/bench_quick.yaml)")
    q.add_argument("--config", help="benchmark config (default: the shipped bench.yaml, or "
                   "bench_quick.yaml with --quick)")
    q.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a dotted key; repeatable")
    q.add_argument("--out", required=True, help="folder for results.json, report.md, plots "
                   "and checkpoints (rerunning with the same folder resumes)")
    q.add_argument("--fresh", action="store_true", help="ignore rows already in --out")


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config or ("bench_quick" if args.quick else "bench"),
                          args.overrides)
    # heavy (torch, Ray or MLflow): imported when the command runs, see pipeline/commands/__init__
    from pipeline.bench.quality import run_quality

    outcome = run_quality(cfg, args.out, fresh=args.fresh)
    print(f"\nreport: {outcome.out_dir / 'report.md'}")
    print(f"MLflow parent run: {outcome.parent_run_id}")
    if outcome.failed:
        print(f"failed rows: {', '.join(outcome.failed)}")
        return 1
    return 0
