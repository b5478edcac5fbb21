"""Preprocessing benchmark: Ray Data pipeline vs a plain single-process loop (not a test).

Measures clips/s, peak memory and CPU by process role of ``run_preprocess``, side by side:

  1. ``local`` engine: one process, the same ``ClipDecoder`` + ``write_shard`` code, no Ray;
  2. ``ray`` engine: Ray Data tasks that each decode and write one group of clips, on a fresh
     local Ray instance of ``--num-cpus`` CPUs started as ``dmt preprocess`` starts it (no
     dashboard);
  3. at each of ``--scales``: the clips listed that many times under other ids in a manifest
     (the same decode work per clip), to show that peak memory does not grow with the count.

Each measurement runs in a fresh subprocess; the parent samples the proportional set size
(PSS, so shared pages such as Ray's object store are counted once) and the CPU time of that
process and all its descendants (driver, raylet, GCS, workers) from /proc every 0.2 s (Linux
only; see proc_sampler.py). "incl. startup" counts the interpreter and ``ray.init``;
"process wall" also Ray's shutdown.

    .venv/bin/python jobs/benchmarks/preprocess_bench.py            # 200 and 2,000 clips
    .venv/bin/python jobs/benchmarks/preprocess_bench.py --clips 200 --scales 1,5,50 \
        --local-scales 1,5                     # 200, 1,000 and 10,000 clips
    .venv/bin/python jobs/benchmarks/preprocess_bench.py --clips 50 --scales 1,2 --seconds 3

Clips come from ``pipeline.synth.generate`` when it exists (the demo benchmark's own clips),
or with ``--source pyav`` from the PyAV writer below (10 s, 25 fps, 320x240 H.264 with
textured moving shapes, 44.1 kHz stereo AAC tones + noise: VGG-Sound-like decode work).

Results go to bench-out/preprocess/results_<source>.json and a Markdown table on stdout
(docs/performance.md quotes the committed docs/preprocess-bench/ files).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

from proc_sampler import Sampler  # this script's folder (sys.path[0]): not a package

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- clip writer (fallback)

def _write_clip(path: Path, seed: int, seconds: float, fps: int, width: int, height: int,
                sample_rate: int) -> None:
    import av
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * fps)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 255 / width), (yy * 255 / height), np.full_like(xx, 90.0)], -1)
    base = base + rng.normal(0, 12, base.shape)
    colour = rng.integers(60, 255, 3)
    side = height // 3
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        as_ = c.add_stream("aac", rate=sample_rate, layout="stereo")
        for i in range(n):
            img = base.copy()
            x = int((width - side) * (0.5 + 0.4 * np.sin(i / fps)))
            img[height // 3: height // 3 + side, x:x + side] = colour
            img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        f0 = 200 + 100 * (seed % 12)
        wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.normal(size=t.shape)
        audio = np.stack([wave, wave]).astype(np.float32)
        rs = av.AudioResampler(format=as_.codec_context.format.name, layout="stereo",
                               rate=sample_rate, frame_size=as_.codec_context.frame_size or 1024)
        for start in range(0, audio.shape[1], 4096):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start:start + 4096]),
                                            format="fltp", layout="stereo")
            fr.sample_rate, fr.pts, fr.time_base = sample_rate, start, Fraction(1, sample_rate)
            for out in rs.resample(fr):
                for p in as_.encode(out):
                    c.mux(p)
        for out in rs.resample(None):
            for p in as_.encode(out):
                c.mux(p)
        for p in as_.encode():
            c.mux(p)


def make_clips(folder: Path, n: int, seconds: float | None, workers: int,
               source: str) -> tuple[Path, str]:
    """``n`` clips in ``folder/videos``; returns (videos folder, source description)."""
    videos = folder / "videos"
    done = sorted(videos.glob("*.mp4")) if videos.is_dir() else []
    if len(done) >= n and (folder / "source.txt").is_file():
        return videos, (folder / "source.txt").read_text().strip()
    if source == "auto":
        try:
            import pipeline.synth  # noqa: F401

            source = "synth"
        except ImportError:
            source = "pyav"
    if source == "synth":
        from pipeline.config import SynthConfig
        from pipeline.synth import generate

        cfg = SynthConfig(clips=n, labeled=min(16, n // 2), test=min(16, n // 4), workers=workers)
        if seconds:
            cfg.duration = seconds
        generate(cfg, folder, progress=False)
        desc = (f"pipeline.synth.generate: {n} clips of {cfg.duration:g} s, "
                f"{cfg.frame_size}x{cfg.frame_size} at {cfg.fps} fps, {cfg.sample_rate} Hz audio")
    else:
        from concurrent.futures import ProcessPoolExecutor

        seconds = seconds or 10.0
        videos.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(max(1, workers)) as pool:
            list(pool.map(_write_clip, [videos / f"clip{i:05d}.mp4" for i in range(n)],
                          range(n), [seconds] * n, [25] * n, [320] * n, [240] * n,
                          [44100] * n))
        desc = (f"PyAV writer of this script: {n} clips of {seconds:g} s, 320x240 at 25 fps "
                f"H.264 with textured frames, 44.1 kHz stereo AAC")
    (folder / "source.txt").write_text(desc + "\n")
    return videos, desc


def make_manifest(videos: Path, path: Path, times: int) -> Path:
    files = sorted(videos.glob("*.mp4"))
    lines = ["id,path"]
    for k in range(times):
        lines += [f"r{k:02d}_{f.stem},{f}" for f in files]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- one measured run

def child(args: argparse.Namespace) -> None:
    """Runs inside the measured subprocess, which pays for these imports as `dmt preprocess`
    does (its start-up is part of the figures)."""
    from pipeline.config import DataConfig
    from pipeline.data import run_preprocess

    t0 = time.perf_counter()
    if args.engine == "ray":  # the instance `dmt preprocess` starts: no dashboard
        from pipeline.ray_env import ensure_ray

        ensure_ray(num_cpus=args.num_cpus, dashboard=False,
                   object_store_memory=args.object_store_mb * 1024**2)
    data = DataConfig(rows_per_file=args.rows_per_file, decode_batch_size=args.batch_size,
                      decode_concurrency=args.num_cpus)
    summary = run_preprocess(args.videos, args.out, data=data, engine=args.engine, force=True)
    wall = time.perf_counter() - t0
    print(json.dumps({"wall_s": wall, "summary": {k: summary[k] for k in (
        "inputs", "rows", "quarantined", "shard_bytes", "bytes_per_row", "timings",
        "clips_per_s", "shards")}}))


def measure(args: argparse.Namespace, engine: str, videos: Path, out: Path,
            rows_per_file: int) -> dict:
    cmd = [sys.executable, __file__, "--_child", "--engine", engine, "--videos", str(videos),
           "--out", str(out), "--num-cpus", str(args.num_cpus), "--rows-per-file",
           str(rows_per_file), "--batch-size", str(args.batch_size), "--object-store-mb",
           str(args.object_store_mb)]
    env = {**os.environ, "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            cwd=REPO, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    stdout, _ = proc.communicate()
    sampler.stop.set()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{engine} run failed (exit {proc.returncode})")
    res = json.loads(stdout.strip().splitlines()[-1])
    s = res["summary"]
    columns = column_bytes(out)
    decode_s = s["timings"]["decode_write_s"]
    return {
        "engine": engine, "clips": s["inputs"], "rows": s["rows"],
        "rows_per_file": rows_per_file, "shards": len(s["shards"]),
        "process_wall_s": round(time.perf_counter() - t0, 1),
        "decode_write_s": round(decode_s, 1),
        "clips_per_s": round(s["inputs"] / decode_s, 1),
        "clips_per_s_incl_startup": round(s["inputs"] / res["wall_s"], 1),
        "peak_pss_mb": round(sampler.peak_pss / 1024**2),
        "peak_rss_mb": round(sampler.peak_rss / 1024**2),
        "peak_processes": sampler.peak_procs,
        "cpu_s_by_role": sampler.cpu_by_role(),
        "shard_bytes_per_clip": s["bytes_per_row"],
        "column_bytes_per_clip": {k: round(v / max(1, s["rows"])) for k, v in columns.items()},
    }


def column_bytes(out: Path) -> dict[str, int]:
    """Compressed bytes per column over all shards (from the Parquet footers)."""
    import pyarrow.parquet as pq

    totals: dict[str, int] = {}
    for f in sorted(Path(out).glob("part-*.parquet")):
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            for c in range(rg.num_columns):
                col = rg.column(c)
                name = col.path_in_schema.split(".")[0]
                totals[name] = totals.get(name, 0) + col.total_compressed_size
    return totals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--scales", default="1,10",
                    help="run on the clips listed this many times (a manifest of the same "
                         "files under other ids), comma-separated")
    ap.add_argument("--local-scales", default="1",
                    help="the scales at which the local engine runs too")
    ap.add_argument("--source", choices=("auto", "synth", "pyav"), default="auto",
                    help="clip writer: pipeline.synth (auto when present) or this script's")
    ap.add_argument("--seconds", type=float, default=None,
                    help="clip length (default: synth's 3.2 s; 10 s for the pyav writer)")
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--rows-per-file", type=int, default=1000)
    ap.add_argument("--small-rows-per-file", type=int, default=0,
                    help="also run both sizes with this rows_per_file (0: skip)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--object-store-mb", type=int, default=512)
    ap.add_argument("--work", default=str(REPO / "bench-out" / "preprocess"))
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--engine", default="ray", help=argparse.SUPPRESS)
    ap.add_argument("--videos", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        child(args)
        return

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    videos, source = make_clips(work / f"clips_{args.source}", args.clips, args.seconds,
                                args.num_cpus, args.source)
    print(f"clips: {source} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    runs = []
    plan = []  # (engine, clips listed, rows_per_file): both engines side by side per scale
    for scale in sorted({int(v) for v in args.scales.split(",")}):
        src = videos if scale == 1 else make_manifest(
            videos, work / f"manifest_x{scale}.csv", scale)
        if scale in {int(v) for v in args.local_scales.split(",")}:
            plan.append(("local", src, args.rows_per_file))
        plan.append(("ray", src, args.rows_per_file))
        if args.small_rows_per_file:
            plan.append(("ray", src, args.small_rows_per_file))
    for engine, src, rpf in plan:
        load_before = os.getloadavg()[0]
        r = measure(args, engine, src, work / f"out_{engine}", rpf)
        r["loadavg_1min_before_after"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
        runs.append(r)
        print(json.dumps(r), file=sys.stderr)

    result = {"source": source, "num_cpus": args.num_cpus, "batch_size": args.batch_size,
              "object_store_mb": args.object_store_mb, "runs": runs,
              "machine": {"cpus": os.cpu_count()}}
    (work / f"results_{args.source}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nclips: {source}; {args.num_cpus} CPUs, decode_batch_size {args.batch_size}\n")
    cols = runs[0]["column_bytes_per_clip"]
    top = sorted(cols.items(), key=lambda kv: -kv[1])[:4]
    print("shard bytes per clip by column: " + ", ".join(f"{k} {v:,}" for k, v in top)
          + f", other {sum(cols.values()) - sum(v for _, v in top):,}\n")
    local = {r["clips"]: r for r in runs if r["engine"] == "local"}
    print("| engine | clips | rows_per_file | shards | clips/s (decode+write) | clips/s incl. "
          "startup | x local (incl. startup) | process wall | peak PSS, all processes | "
          "peak RSS sum | processes | CPU s by role | load avg |")
    print("| --- " * 13 + "|")
    for r in runs:
        load, base = r["loadavg_1min_before_after"], local.get(r["clips"])
        ratio = (f"{r['clips_per_s_incl_startup'] / base['clips_per_s_incl_startup']:.2f}x"
                 if base and r is not base else "")
        cpu = ", ".join(f"{k} {v}" for k, v in r["cpu_s_by_role"].items() if v >= 0.1)
        print(f"| {r['engine']} | {r['clips']:,} | {r['rows_per_file']} | {r['shards']} | "
              f"{r['clips_per_s']} | {r['clips_per_s_incl_startup']} | {ratio} | "
              f"{r['process_wall_s']} s | {r['peak_pss_mb']} MB | {r['peak_rss_mb']} MB | "
              f"{r['peak_processes']} | {cpu} | {load[0]} / {load[1]} |")

if __name__ == "__main__":
    main()
