"""CPU seconds per training step of a quality-benchmark row, side by side (not a test).

What sizes the full quality benchmark's wall time (docs/performance.md): a row's steps at the
config's networks, per precision (``train.precision``) and audio rate
(``data.sample_rate``). Each variant trains the row for a few steps through the benchmark's own
``runner.train_row`` (one torch thread, as a benchmark row), on random clips of the config's
sizes; variants alternate round by round so that the machine's noise falls on all of them, and
the table gives each one's median over rounds and its speed-up over the first variant.

    .venv/bin/python jobs/benchmarks/step_cost.py --config jobs/configs/bench.yaml \\
        --variants fp32:16000,bf16:16000,fp32:8000,bf16:8000 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from pipeline import config as config_mod  # noqa: E402
from pipeline.bench import memory, runner  # noqa: E402
from pipeline.bench.plan import BenchRow, row_config  # noqa: E402


def random_clips(n: int, side: int, samples: int, seed: int = 0) -> memory.ClipArrays:
    """``n`` clips of random frames, audio and box maps; the last 8 are the test split."""
    rng = np.random.default_rng(seed)
    return memory.ClipArrays(
        ids=np.array([f"c{i:04d}" for i in range(n)]), is_test=np.arange(n) >= n - 8,
        frame=rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8),
        audio=rng.standard_normal((n, samples)).astype(np.float32),
        map=(rng.random((n, 224, 224)) > 0.7).astype(np.float16), has_boxes=np.full(n, True))


def step_seconds(config: str, method: str, precision: str, rate: int, steps: int
                 ) -> tuple[float, float]:
    """(stage-1, stage-2) CPU seconds per step of ``method``: one stage-1 epoch and two
    stage-2 epochs of ``steps`` steps; the first stage-2 epoch is a warm-up, not counted."""
    base = config_mod.load(config, [f"train.precision={precision}", f"data.sample_rate={rate}",
                                    "train.stage1_epochs=1", "train.stage2_epochs=2",
                                    f"train.steps_per_epoch={steps}"])
    row = BenchRow(method, 0.2, 0, ("A",))
    cfg = row_config(base, row)  # the method's overrides, as the benchmark trains the row
    samples = int(cfg.data.audio_seconds * rate)
    clips = random_clips(200, cfg.model.image_size, samples)
    out = runner.train_row(config_mod.to_dict(cfg), row, clips)
    cpu = [h["cpu_s"] for h in out["history"]]
    return cpu[0] / steps, (cpu[2] - cpu[1]) / steps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "jobs/configs/bench.yaml"))
    ap.add_argument("--methods", default="dmt,supervised")
    ap.add_argument("--variants", default="fp32:16000,bf16:16000,fp32:8000,bf16:8000",
                    help="precision:sample_rate, comma-separated; the first is the baseline")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args(argv)
    variants = [(p, int(r)) for p, r in (v.split(":") for v in args.variants.split(","))]
    methods = args.methods.split(",")
    times: dict[tuple, list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for method in methods:
            for variant in variants:
                times.setdefault((method, variant), []).append(
                    step_seconds(args.config, method, *variant, args.steps))
    print("| method | precision | audio rate | stage-1 CPU-s/step | stage-2 CPU-s/step "
          "| stage-2 speed-up |\n| --- | --- | --: | --: | --: | --: |")
    for method in methods:
        base = statistics.median(s2 for _, s2 in times[(method, variants[0])])
        for precision, rate in variants:
            runs = times[(method, (precision, rate))]
            s1, s2 = (statistics.median(r[i] for r in runs) for i in (0, 1))
            print(f"| {method} | {precision} | {rate} | {s1:.3f} | {s2:.3f} | {base / s2:.2f}x |")


if __name__ == "__main__":
    main()
