"""Training throughput: the Ray Train loop against the same `dmt_step` in a plain loop.

    .venv/bin/python jobs/benchmarks/train_bench.py --config jobs/configs/demo.yaml --steps 30 \
        --json train_bench.json

Both sides run stage-2 DMT steps over the same shards with the same batch sizes. The plain loop
decodes its batches inline (pyarrow + the same ``ToTrainingBatch``), single process, no Ray; the
Ray side is `dmt train` with one worker, whose decoding runs in Ray Data tasks ahead of the loop.
Reported: samples per second (labeled + unlabeled clips) and the fraction of step time spent
waiting for data, each measured over the second epoch (the first pays start-up costs), and
their ratio; ``--json FILE`` writes ``{"plain": {...}, "ray": {...}, "ray_over_plain": r}`` with
``samples_per_s``, ``data_wait_frac`` and ``s_per_step`` per side.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from pipeline import config as C
from pipeline.dmt.state import make_state
from pipeline.dmt.step import dmt_step
from pipeline.engine.batches import to_torch
from pipeline.engine.loop import unlabeled_batch_size
from pipeline.engine.offline import split_batches
from pipeline.prepare import prepare_dataset
from pipeline.ray_env import ensure_ray
from pipeline.train.driver import fit


def plain_loop(cfg: C.Config, steps: int) -> dict[str, float]:
    torch.set_num_threads(cfg.train.threads or max(1, int(cfg.train.cpus_per_worker)))
    shards = C.data_paths(cfg.data).shards
    b_lab = cfg.optim.batch_size
    b_unl = unlabeled_batch_size(cfg)
    state = make_state(cfg.model, cfg.dmt, cfg.optim, seed=cfg.train.seed,
                       sample_rate=cfg.data.sample_rate)

    def endless(split: str, size: int):
        while True:
            yield from split_batches(shards, split, cfg.model.image_size, size)

    labeled, unlabeled = endless("labeled", b_lab), endless("unlabeled", b_unl)
    wait = busy = 0.0
    for step in itertools.count():
        if step == steps * 2:
            break
        t0 = time.perf_counter()
        lab, unl = to_torch(next(labeled), "cpu"), to_torch(next(unlabeled), "cpu")
        t1 = time.perf_counter()
        dmt_step(state, lab, unl, cfg.dmt)
        t2 = time.perf_counter()
        if step >= steps:  # second "epoch" only
            wait, busy = wait + t1 - t0, busy + t2 - t1
    return {"samples_per_s": steps * (b_lab + b_unl) / (wait + busy),
            "data_wait_frac": wait / (wait + busy), "s_per_step": (wait + busy) / steps}


def ray_loop(cfg: C.Config, steps: int) -> dict[str, float]:
    run_cfg = C.from_dict(C.to_dict(cfg))
    for text in ("train.stage1_epochs=0", "train.stage2_epochs=2", f"train.steps_per_epoch={steps}",
                 "train.eval_every=2", "tracking.heatmaps=0", "train.num_workers=1",
                 "tracking.experiment=bench-train"):
        C.set_key(run_cfg, *C.parse_override(text))
    outcome = fit(run_cfg, say=lambda *_: None)
    m = outcome.metrics
    b = cfg.optim.batch_size * (1 + cfg.optim.unlabeled_ratio)
    return {"samples_per_s": m["train/samples_per_s"], "data_wait_frac": m["train/data_wait_frac"],
            "s_per_step": b / m["train/samples_per_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="jobs/configs/demo.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--steps", type=int, default=30, help="steps per measured epoch")
    parser.add_argument("--json", metavar="FILE", help="write both sides' figures as JSON")
    args = parser.parse_args()
    cfg = C.resolve_paths(C.load(args.config, args.overrides))

    ensure_ray()
    prepare_dataset(cfg)
    plain = plain_loop(cfg, args.steps)
    ray_side = ray_loop(cfg, args.steps)
    print(f"\nconfig {args.config}: batch {cfg.optim.batch_size} labeled + "
          f"{cfg.optim.batch_size * cfg.optim.unlabeled_ratio:g} unlabeled, image "
          f"{cfg.model.image_size}, {args.steps} measured steps, method {cfg.dmt.method}\n")
    print("| loop | samples/s | s/step | data wait |")
    print("| --- | --- | --- | --- |")
    for name, row in (("plain (no Ray, inline decode)", plain), ("Ray Train, 1 worker", ray_side)):
        print(f"| {name} | {row['samples_per_s']:.1f} | {row['s_per_step']:.2f} | "
              f"{row['data_wait_frac']:.1%} |")
    ratio = ray_side["samples_per_s"] / plain["samples_per_s"]
    print(f"\nRay Train / plain loop: {ratio:.2f}x samples/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"plain": plain, "ray": ray_side,
                                               "ray_over_plain": ratio, "config": args.config,
                                               "steps": args.steps}, indent=1))


if __name__ == "__main__":
    main()
