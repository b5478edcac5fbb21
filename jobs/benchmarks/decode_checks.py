"""What the per-clip decoder checks cost (not a test): time of each stage of ``decode_clip``.

For N synthetic clips (``pipeline.synth.generate``, or ``--source pyav``'s 10 s 320x240 clips
of preprocess_bench.py) it times, per clip and side by side in one run: the PyAV header probe,
decord's frame, the frame-shape check, decord's audio window with its sample-count check, and
what a fallback costs when it happens (PyAV decoding the same frame; PyAV decoding the track).

    .venv/bin/python jobs/benchmarks/decode_checks.py --clips 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "jobs" / "benchmarks"))


def _ms(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return 1000 * (time.perf_counter() - t0), out


def measure(videos: list[Path]) -> dict[str, float]:
    from pipeline.data import audio_window, media, video_frame

    decord = media.import_decord()
    times: dict[str, list[float]] = {k: [] for k in (
        "probe", "decord_frame", "shape_check_us", "decord_audio_window", "pyav_frame",
        "pyav_audio_window")}
    for path in videos:
        p = str(path)
        ms, facts = _ms(media.probe, p)
        times["probe"].append(ms)
        ms, frame = _ms(video_frame.read_frame, p, -1.0, facts)
        times["decord_frame"].append(ms)
        t0 = time.perf_counter()
        for _ in range(1000):
            video_frame._shape_ok(frame.image, facts)  # noqa: SLF001 - the check itself, timed
        times["shape_check_us"].append(1000 * (time.perf_counter() - t0))  # µs per call
        ms, _ = _ms(audio_window.read_audio_window, p, 16000, frame.time, 3.0)
        times["decord_audio_window"].append(ms)
        known = (frame.index, frame.time, frame.num_frames, frame.fps, frame.duration)
        ms, _ = _ms(video_frame._pyav_frame, p, -1.0, facts, known, "timed")  # noqa: SLF001
        times["pyav_frame"].append(ms)
        ms, _ = _ms(audio_window._pyav_audio, p, 16000, frame.time, 3.0, "timed")  # noqa: SLF001
        times["pyav_audio_window"].append(ms)
    del decord
    return {k: round(statistics.median(v), 3) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--source", choices=("synth", "pyav"), default="synth")
    ap.add_argument("--json", help="write the medians here")
    args = ap.parse_args()
    from preprocess_bench import make_clips

    with tempfile.TemporaryDirectory() as tmp:
        videos, desc = make_clips(Path(tmp), args.clips, None, 2, args.source)
        result = {"source": desc, "clips": args.clips, "load_1min": os.getloadavg()[0],
                  "median_ms_per_clip": measure(sorted(videos.glob("*.mp4"))[:args.clips])}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
