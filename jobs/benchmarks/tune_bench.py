"""Sweep wall time with and without the shared stage-1 warm-up, side by side in one run.

    .venv/bin/python jobs/benchmarks/tune_bench.py --config jobs/configs/tune.yaml --samples 6 \
        --json bench-out/tune_warmup.json

The same sweep (same config, seed and space) runs twice on one Ray instance: first with every
trial warming up itself (``tune.share_warmup=false``), then with one shared warm-up. Reported:
each sweep's wall time (data prepared before either starts), their ratio, the epochs each trained,
and every trial's values, status, epochs and best objective on both sides (equal when the shared
warm-up gives each trial the stage 2 it had: the same ASHA decisions follow).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pipeline import config as C


def one_sweep(cfg: C.Config, samples: int, share: bool, name: str) -> dict:
    from pipeline.tune.sweep import run_sweep

    run_cfg = C.from_dict(C.to_dict(cfg), [f"tune.share_warmup={str(share).lower()}",
                                           f"name={name}"])
    t0 = time.perf_counter()
    out = run_sweep(run_cfg, samples, say=lambda *_: None)
    wall = time.perf_counter() - t0
    trials = sorted(({"values": r["values"], "status": r["status"], "epochs": r["epochs"],
                      "objective": r["objective"]} for r in out.trials),
                    key=lambda r: sorted(r["values"].items()))
    return {"wall_s": wall, "epochs_run": out.epochs_run, "epochs_full": out.epochs_full,
            "best_value": out.best_value, "trials": trials}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="jobs/configs/tune.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    cfg = C.resolve_paths(C.load(args.config, args.overrides))
    from pipeline.prepare import prepare_dataset
    from pipeline.ray_env import ensure_ray

    ensure_ray()
    prepare_dataset(cfg)
    alone = one_sweep(cfg, args.samples, False, f"{cfg.name}-alone")
    shared = one_sweep(cfg, args.samples, True, f"{cfg.name}-shared")
    ratio = shared["wall_s"] / alone["wall_s"]
    print(f"\n{args.samples} trials, config {args.config}")
    print("| sweep | wall time | epochs trained | best objective |")
    print("| --- | --: | --: | --: |")
    for label, row in (("each trial warms up", alone), ("one shared warm-up", shared)):
        print(f"| {label} | {row['wall_s']:.0f} s | {row['epochs_run']} of {row['epochs_full']} "
              f"| {row['best_value']:.4f} |")
    print(f"\nshared / alone wall time: {ratio:.2f} ({1 - ratio:.0%} saved); "
          f"trials identical: {alone['trials'] == shared['trials']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"alone": alone, "shared": shared,
                                               "shared_over_alone": ratio,
                                               "config": args.config}, indent=1))


if __name__ == "__main__":
    main()
