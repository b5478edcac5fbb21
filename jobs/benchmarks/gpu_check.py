"""The GPU check (`make gpu-check`; not part of `make test`): the paper config's DMT step on a
CUDA device, timed, and its bf16 maps against fp32.

    python jobs/benchmarks/gpu_check.py                     # paper config, synthetic clips
    python jobs/benchmarks/gpu_check.py --shards data/flickr/shards --json out.json
    python jobs/benchmarks/gpu_check.py --device cpu --steps 2 --set optim.batch_size=2  # dry run

It needs only torch, torchaudio, torchvision, numpy, pyarrow and pillow (no Ray, MLflow, decord,
PyAV or PyYAML; no network): it imports the Ray-free engine, the algorithm and the models, and
takes its batches from shard files (``--shards``) or from tensors it makes (224 px frames with a
bright box, tones, the box's map). Without a CUDA device it says so and exits 0.

Measured over ``--steps`` stage-2 steps after ``--warmup`` (CUDA-synchronised): samples/s
(labeled + unlabeled), the step split into data wait (batch to device) / forward-backward
(students, pseudo-labels, optimiser) / EMA, peak GPU memory; then on ``--eval-clips`` clips the
teachers' mean map under fp32 and under bf16 autocast: mean absolute difference and the cIoU
(median rule) of both against the clips' boxes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline import config as config_mod  # noqa: E402
from pipeline import metrics  # noqa: E402
from pipeline.dmt import dmt_step, make_state, predict_maps  # noqa: E402
from pipeline.engine.batches import to_torch  # noqa: E402
from pipeline.engine.loop import seed_everything, unlabeled_batch_size  # noqa: E402

DEFAULT_CONFIG = "jobs/configs/paper/flickr_144k_4k.yaml"


def synthetic_batches(n: int, side: int, samples: int, key: str, seed: int, count: int = 4):
    """``count`` host batches of ``n`` clips (uint8 frames, a bright box each, a tone whose pitch
    follows the box, the box's 224x224 map under ``key``), cycled forever."""
    rng = np.random.default_rng(seed)
    batches = []
    t = np.arange(samples) / 16000.0
    for _ in range(count):
        frames = (rng.random((n, 3, side, side)) * 80).astype(np.uint8)
        maps = np.zeros((n, 224, 224), np.float32)
        audio = np.zeros((n, samples), np.float32)
        for i in range(n):
            w = int(rng.integers(side // 4, side // 2))
            x0, y0 = (int(v) for v in rng.integers(0, side - w, 2))
            frames[i, :, y0:y0 + w, x0:x0 + w] = 255
            k = 224 / side
            maps[i, int(y0 * k):int((y0 + w) * k), int(x0 * k):int((x0 + w) * k)] = 1.0
            audio[i] = 0.5 * np.sin(2 * math.pi * (200 + 1500 * x0 / side) * t)
        batches.append({"frame": frames, "audio": audio, key: maps,
                        "has_boxes": np.ones(n, bool)})
    return itertools.cycle(batches)


def shard_batches(shards: str, split: str, size: int, image_size: int):
    from pipeline.engine.offline import split_batches  # optional: only --shards reads shards

    while True:
        yield from split_batches(shards, split, image_size, size)


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def timed_steps(state, cfg, labeled, unlabeled, steps: int, warmup: int) -> dict:
    """Stage-2 steps; the split of the measured ones' time, in seconds per step."""
    rows = []
    for i in range(warmup + steps):
        t0 = _clock(state.device)
        lab, unl = to_torch(next(labeled), state.device), to_torch(next(unlabeled), state.device)
        t1 = _clock(state.device)
        stats = dmt_step(state, lab, unl, cfg.dmt)
        t2 = _clock(state.device)
        if i >= warmup:
            rows.append((t1 - t0, t2 - t1 - stats["time_ema_s"], stats["time_ema_s"],
                         len(lab["frame"]) + len(unl["frame"])))
    wait, fwd, ema = (statistics.fmean(r[k] for r in rows) for k in range(3))
    total = wait + fwd + ema
    return {"samples_per_s": sum(r[3] for r in rows) / sum(r[0] + r[1] + r[2] for r in rows),
            "step_s": {"data_wait": wait, "forward_backward": fwd, "ema": ema, "total": total},
            "step_frac": {"data_wait": wait / total, "forward_backward": fwd / total,
                          "ema": ema / total}}


def agreement(state, batch: dict) -> dict:
    """The teachers' mean map under fp32 and under bf16 autocast on the same clips."""
    b = to_torch(batch, state.device)
    saved = state.precision
    try:
        state.precision = "fp32"
        ref = predict_maps(state, b, "teacher_mean").cpu().numpy()
        state.precision = "bf16"
        low = predict_maps(state, b, "teacher_mean").cpu().numpy()
    finally:
        state.precision = saved
    gts = batch["gt"]
    fp32, bf16 = metrics.evaluate_maps(ref, gts), metrics.evaluate_maps(low, gts)
    return {"clips": len(gts), "map_mean_abs_diff": float(np.abs(ref - low).mean()),
            "map_max_abs_diff": float(np.abs(ref - low).max()),
            "ciou_fp32": fp32["ciou"], "ciou_bf16": bf16["ciou"],
            "mean_ciou_fp32": fp32["mean_ciou"], "mean_ciou_bf16": bf16["mean_ciou"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / DEFAULT_CONFIG))
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--shards", help="a shards folder to take batches from (default: tensors)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--eval-clips", type=int, default=64)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a dry run)")
    ap.add_argument("--json", default=str(REPO / "bench-out" / "gpu_check.json"))
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing to "
              "check. Run it on a GPU machine, or pass --device cpu for a dry run.")
        return 0
    cfg = config_mod.load(args.config, args.overrides)
    device = torch.device(args.device)
    seed_everything(cfg.train.seed)
    torch.backends.cudnn.benchmark = True
    state = make_state(cfg.model, cfg.dmt, cfg.optim, device, seed=cfg.train.seed,
                       sample_rate=cfg.data.sample_rate, precision=cfg.train.precision,
                       channels_last=cfg.train.channels_last)
    state.profile = True
    n_lab, n_unl = cfg.optim.batch_size, unlabeled_batch_size(cfg)
    samples = int(round(cfg.data.audio_seconds * cfg.data.sample_rate))
    side = cfg.model.image_size
    if args.shards:
        labeled = shard_batches(args.shards, "labeled", n_lab, side)
        unlabeled = shard_batches(args.shards, "unlabeled", n_unl, side)
    else:
        labeled = synthetic_batches(n_lab, side, samples, "gt", 1)
        unlabeled = synthetic_batches(n_unl, side, samples, "true_map", 2)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    result = {"config": str(args.config), "device": torch.cuda.get_device_name(device)
              if device.type == "cuda" else "cpu", "torch": torch.__version__,
              "precision": cfg.train.precision, "channels_last": cfg.train.channels_last,
              "image_size": side, "audio_backbones": [cfg.model.audio_a, cfg.model.audio_b],
              "batch": {"labeled": n_lab, "unlabeled": n_unl}, "steps": args.steps,
              "data": args.shards or "synthetic tensors"}
    result.update(timed_steps(state, cfg, labeled, unlabeled, args.steps, args.warmup))
    if device.type == "cuda":
        result["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    evalset = next(synthetic_batches(args.eval_clips, side, samples, "gt", 3, count=1))
    result["fp32_vs_bf16"] = agreement(state, evalset)
    result["wall_s"] = time.perf_counter() - t0
    text = json.dumps(result, indent=1)
    print(text)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
