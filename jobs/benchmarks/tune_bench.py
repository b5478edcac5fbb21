"""Two sweeps side by side in one run: with and without the shared stage-1 warm-up, or
(--compare search) random search against Optuna's TPE on the same budget.

    .venv/bin/python jobs/benchmarks/tune_bench.py --config jobs/configs/tune.yaml --samples 6 \
        --json bench-out/tune_warmup.json
    .venv/bin/python jobs/benchmarks/tune_bench.py --compare search --samples 8 --startup 3 \
        --json bench-out/tune_search.json

--compare search: the same space, seed and trial count, ASHA on both; TPE draws the first
--startup trials at random and proposes the rest from the results so far. Reported: the best
objective after each trial (in trial order) on both sides, and each sweep's wall time.

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
from pipeline import tracking
from pipeline.prepare import prepare_dataset
from pipeline.ray_env import ensure_ray
from pipeline.tune.sweep import run_sweep


def one_sweep(cfg: C.Config, samples: int, overrides: list[str], name: str) -> dict:
    run_cfg = C.from_dict(C.to_dict(cfg), [*overrides, f"name={name}"])
    t0 = time.perf_counter()
    out = run_sweep(run_cfg, samples, say=lambda *_: None)
    wall = time.perf_counter() - t0
    trials = sorted(({"values": r["values"], "status": r["status"], "epochs": r["epochs"],
                      "objective": r["objective"]} for r in out.trials),
                    key=lambda r: sorted(r["values"].items()))
    better = max if run_cfg.tune.mode == "max" else min
    best_so_far: list[float | None] = []  # after each trial, in the order they started
    starts = trial_starts(run_cfg, out.parent_run_id)
    for row in sorted(out.trials, key=lambda r: starts.get(r["trial_id"], 0)):
        seen = [v for v in (*best_so_far[-1:], row["objective"]) if v is not None]
        best_so_far.append(better(seen) if seen else None)
    return {"wall_s": wall, "epochs_run": out.epochs_run, "epochs_full": out.epochs_full,
            "best_value": out.best_value, "trials": trials, "best_so_far": best_so_far}


def trial_starts(cfg: C.Config, parent_run_id: str) -> dict[str, int]:
    """trial_id -> its MLflow run's start time: the order trials started (Optuna's trial ids
    are random, not counters like the random search's)."""
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    runs = tracking.search_runs(uri, cfg.tracking.experiment or cfg.name,
                                f"tags.`{tracking.PARENT_TAG}` = '{parent_run_id}'",
                                max_results=1000)
    return {r.info.run_name.removeprefix("trial-"): r.info.start_time for r in runs}


def compare_search(cfg: C.Config, samples: int, startup: int) -> dict:
    runs = {"random": one_sweep(cfg, samples, ["tune.search=random"], f"{cfg.name}-random"),
            "optuna": one_sweep(cfg, samples, ["tune.search=optuna",
                                               f"tune.optuna_startup={startup}"],
                                f"{cfg.name}-optuna")}
    print(f"\n{samples} trials each, TPE after {startup} random ones")
    print("| trials run | " + " | ".join(f"best so far, {k}" for k in runs) + " |")
    print("| --: " * (1 + len(runs)) + "|")
    for k in range(samples):
        cells = [runs[name]["best_so_far"][k] if k < len(runs[name]["best_so_far"]) else None
                 for name in runs]
        print(f"| {k + 1} | " + " | ".join("" if c is None else f"{c:.4f}" for c in cells) + " |")
    print("| wall time | " + " | ".join(f"{r['wall_s']:.0f} s" for r in runs.values()) + " |")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="jobs/configs/tune.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--samples", type=int, default=6)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--compare", choices=("warmup", "search"), default="warmup")
    parser.add_argument("--startup", type=int, default=3,
                        help="--compare search: TPE's random start-up trials")
    args = parser.parse_args()
    cfg = C.resolve_paths(C.load(args.config, args.overrides))

    ensure_ray()
    prepare_dataset(cfg)
    if args.compare == "search":
        result = compare_search(cfg, args.samples, args.startup)
    else:
        result = compare_warmup(cfg, args.samples)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**result, "config": args.config,
                                               "samples": args.samples}, indent=1))


def compare_warmup(cfg: C.Config, samples: int) -> dict:
    alone = one_sweep(cfg, samples, ["tune.share_warmup=false"], f"{cfg.name}-alone")
    shared = one_sweep(cfg, samples, ["tune.share_warmup=true"], f"{cfg.name}-shared")
    ratio = shared["wall_s"] / alone["wall_s"]
    print(f"\n{samples} trials")
    print("| sweep | wall time | epochs trained | best objective |")
    print("| --- | --: | --: | --: |")
    for label, row in (("each trial warms up", alone), ("one shared warm-up", shared)):
        print(f"| {label} | {row['wall_s']:.0f} s | {row['epochs_run']} of {row['epochs_full']} "
              f"| {row['best_value']:.4f} |")
    print(f"\nshared / alone wall time: {ratio:.2f} ({1 - ratio:.0%} saved); "
          f"trials identical: {alone['trials'] == shared['trials']}")
    return {"alone": alone, "shared": shared, "shared_over_alone": ratio}


if __name__ == "__main__":
    main()
