"""CPU cost per training sample of the data path at the paper config's sizes (not a test).

Per sample, on one core (torch and the codecs pinned to one thread), in one run side by side:
JPEG decode of the stored frame, its resize to the network's 224x224, the PCM decode of the
3 s window, the 224x224 box map, the whole ``ToTrainingBatch`` conversion (what a Ray Data
task runs per row), and for reference the audio front ends if they ran on the CPU (in the
product they run on the training device, inside the step).

    .venv/bin/python jobs/benchmarks/data_cost.py --rows 256 --json bench-out/data_cost.json

Rows are the paper layout's: a 320x240 frame stored with short side 224 (298x224 JPEG q90) and
3 s of 16 kHz audio, made here from random textures and tones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pipeline.data.codecs import (  # noqa: E402
    decode_jpeg,
    decode_pcm16,
    encode_jpeg,
    encode_pcm16,
    resize_short_side,
)
from pipeline.engine.batches import ToTrainingBatch, resize_square, row_map  # noqa: E402
from pipeline.models.frontends import EZVSLSpectrogram, LogMel, Waveform  # noqa: E402


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    t = np.arange(48000) / 16000
    for i in range(n):
        img = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
        img[60:180, 80:200] = rng.integers(0, 255, 3)
        wave = 0.3 * np.sin(2 * np.pi * (200 + i) * t) + 0.05 * rng.standard_normal(48000)
        rows.append({"id": f"c{i}", "frame_jpeg": encode_jpeg(resize_short_side(img, 224)),
                     "audio": encode_pcm16(wave), "boxes": [[0.25, 0.25, 0.625, 0.75]],
                     "boxes_256": [], "box_format": "vggss", "has_boxes": True})
    return rows


def per_sample_ms(fn, items, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, (time.perf_counter() - t0) / len(items))
    return 1000 * best


def measure(rows: list[dict]) -> dict[str, float]:
    torch.set_num_threads(1)
    frames = [decode_jpeg(r["frame_jpeg"]) for r in rows]
    waves = [torch.from_numpy(decode_pcm16(r["audio"]))[None] for r in rows]
    convert = ToTrainingBatch(224, "gt")

    def batch_of(k):
        return {key: np.array([r[key] for r in rows[k:k + 32]] + [None], dtype=object)[:-1]
                for key in rows[0]}

    batches = [batch_of(k) for k in range(0, len(rows), 32)]
    vggish, ezvsl, soundnet = LogMel.vggish(), EZVSLSpectrogram(), Waveform(8000, 256.0)
    with torch.no_grad():
        out = {
            "jpeg_decode": per_sample_ms(lambda r: decode_jpeg(r["frame_jpeg"]), rows),
            "resize_to_224": per_sample_ms(lambda f: resize_square(f, 224), frames),
            "pcm_decode": per_sample_ms(lambda r: decode_pcm16(r["audio"]), rows),
            "box_map": per_sample_ms(lambda r: row_map(r["boxes"], r["boxes_256"], "vggss"),
                                     rows),
            "to_training_batch": per_sample_ms(convert, batches) / 32,
            "cpu_frontend_vggish_logmel": per_sample_ms(vggish, waves),
            "cpu_frontend_ezvsl_spectrogram": per_sample_ms(ezvsl, waves),
            "cpu_frontend_soundnet_waveform": per_sample_ms(soundnet, waves),
        }
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--json")
    args = ap.parse_args()
    ms = measure(make_rows(args.rows))
    result = {"rows": args.rows, "load_1min": round(os.getloadavg()[0], 2),
              "cpu": os.uname().machine, "ms_per_sample_one_core": ms,
              "samples_per_s_per_core": round(1000 / ms["to_training_batch"], 1)}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
