"""What one row costs as clips grow longer (not a test): 10, 60 and 300 s, side by side.

The same content at each length (ffmpeg's ``testsrc2`` at 320x240, 25 fps, H.264 with a key
frame every 10 s, the middle frame 4 s after one; pink noise as 44.1 kHz stereo AAC),
``--clips`` clips per length, written by the ffmpeg of the ``imageio-ffmpeg`` wheel. Per
clip, in one process, timed alternately:

- ``row``: ``pipeline.data.decode.decode_clip`` -- everything a row takes (header, the
  packets of the first and last second, the frame, the window, JPEG and PCM);
- ``floor``: the least the same library can do for the same frame and window -- PyAV opens
  the file, seeks to the key frame before the middle, decodes to the middle frame, seeks to
  the window and decodes 3 s of audio, nothing else;
- ``ffmpeg``: the ffmpeg command-line tool extracting the middle frame and the 3 s window
  (input-side ``-ss``), including its process start.

Results: a JSON file (per-clip medians in ms and the ratios) and a Markdown table.

    .venv/bin/python jobs/benchmarks/clip_length_cost.py --clips 8 \\
        --out docs/decode-bench/clip_length.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import imageio_ffmpeg

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pipeline.data.decode import DecodeOptions, decode_clip  # noqa: E402

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
LENGTHS = (10, 60, 300)


def write(path: Path, seconds: int, seed: int) -> None:
    """A key frame every 10 s, placed so the middle frame is 4 s (100 frames) after one at
    every length: the decode work the middle needs is the same, only the length differs."""
    offset = (seconds / 2 - 4) % 10
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}",
                    "-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:r=44100:a=0.3:"
                    f"seed={seed}", "-ac", "2", "-c:v", "libx264", "-preset", "veryfast",
                    "-g", "1000", "-sc_threshold", "0",
                    "-force_key_frames", f"expr:gte(t,n_forced*10+{offset})",
                    "-c:a", "aac", "-b:a", "96k", "-shortest", str(path)], check=True)


def floor(path: Path) -> None:
    """Seek + decode of just the middle frame and the 3 s window around it."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        middle = float(container.duration / av.time_base) / 2
        container.seek(int(middle / video.time_base), stream=video, backward=True)
        for frame in container.decode(video):
            if frame.time >= middle:
                frame.to_ndarray(format="rgb24")
                break
        start = middle - 1.5
        container.seek(int(start / audio.time_base), stream=audio, backward=True)
        for frame in container.decode(audio):
            if frame.time >= start + 3.0:
                break


def ffmpeg(path: Path, seconds: int) -> None:
    middle = seconds / 2
    subprocess.run([FFMPEG, "-v", "error", "-ss", f"{middle}", "-i", str(path),
                    "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                   check=True, capture_output=True)
    subprocess.run([FFMPEG, "-v", "error", "-ss", f"{middle - 1.5}", "-i", str(path), "-t", "3",
                    "-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "-"],
                   check=True, capture_output=True)


def measure(clips: list[Path], seconds: int, opts: DecodeOptions, repeats: int) -> dict:
    """Median ms per clip of each way, the three timed alternately clip by clip."""
    times = {"row": [], "floor": [], "ffmpeg": []}
    decode_clip(clips[0], "warm", opts)  # imports, first-use costs
    for _ in range(repeats):
        for clip in clips:
            times["row"].append(timed(decode_clip, clip, clip.stem, opts))
            times["floor"].append(timed(floor, clip))
            times["ffmpeg"].append(timed(ffmpeg, clip, seconds))
    med = {k: round(statistics.median(v), 1) for k, v in times.items()}
    med["row_over_floor"] = round(med["row"] / med["floor"], 2)
    med["bytes"] = int(statistics.median(c.stat().st_size for c in clips))
    return med


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return 1000 * (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the clips")
    parser.add_argument("--containers", default="mp4,mkv",
                        help="the same streams remuxed into each (mkv: millisecond timestamps, "
                             "so the audio is decoded from the track's start)")
    parser.add_argument("--out", default="bench-out/clip_length.json")
    args = parser.parse_args(argv)
    opts = DecodeOptions()
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in LENGTHS:
            mp4s = [Path(tmp) / f"{seconds}s_{i}.mp4" for i in range(args.clips)]
            for i, clip in enumerate(mp4s):
                write(clip, seconds, seed=i)
            for container in args.containers.split(","):
                clips = [c.with_suffix(f".{container}") for c in mp4s]
                for mp4, clip in zip(mp4s, clips, strict=True):
                    if clip != mp4:  # the same streams in another container
                        subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(mp4), "-c", "copy",
                                        str(clip)], check=True)
                med = measure(clips, seconds, opts, args.repeats)
                results[f"{container} {seconds}s"] = med
                print(f"{container} {seconds:>4} s: {med}", flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    report = {"command": "python jobs/benchmarks/clip_length_cost.py " + " ".join(
                  sys.argv[1:] if argv is None else argv),
              "commit": commit, "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
              "clips_per_length": args.clips, "repeats": args.repeats,
              "pyav": av.__version__, "ffmpeg_cli": FFMPEG.rsplit("-", 1)[-1],
              "median_ms_per_clip": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print("\n| clip | row (ms) | floor (ms) | row / floor | ffmpeg CLI (ms) |")
    print("|---|---|---|---|---|")
    for length, med in results.items():
        print(f"| {length} | {med['row']} | {med['floor']} | {med['row_over_floor']} | "
              f"{med['ffmpeg']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
