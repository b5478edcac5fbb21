"""The driver: sample every scene, encode the clips in a process pool, write the annotations.

Layouts are sampled in the parent (cheap, ~10 ms a clip) and shipped to the workers, which only
draw and encode; the annotation files are written by the parent after every clip is on disk, so
a failed run never leaves annotations that point at missing videos.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from pipeline import config as config_mod
from pipeline.config import SynthConfig
from pipeline.synth.annotations import split_ids, vggss_entry, write_annotations
from pipeline.synth.audio import clip_audio
from pipeline.synth.baselines import baseline_scores
from pipeline.synth.categories import categories_of
from pipeline.synth.scene import Scene, num_frames, render_frames, sample_scene
from pipeline.synth.video_io import write_mp4

BASELINE_CLIPS = 300  # test clips scored by the trivial baselines in the summary


def check_config(cfg: SynthConfig) -> None:
    """Validate ``cfg`` exactly like a loaded config (ranges and cross-field rules)."""
    config_mod.from_dict({"data": {"synth": dataclasses.asdict(cfg)}})


def encode_clip(cfg: SynthConfig, scene: Scene, videos: str,
                threads: int) -> tuple[float, float]:
    """Draw and encode one clip into ``videos/<id>.mp4``; return (wall, CPU) seconds taken.

    CPU time is reported too because wall time on a shared machine says little.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    write_mp4(Path(videos) / f"{scene.id}.mp4", render_frames(cfg, scene), clip_audio(cfg, scene),
              fps=cfg.fps, sample_rate=cfg.sample_rate, threads=threads)
    return time.perf_counter() - wall, time.process_time() - cpu


STALE = ("videos/synth_*.mp4", "videos/synth_*.mp4.part", "flickr_xml/synth_*.xml",
         "annotations.json", "meta.json", "labeled.txt", "unlabeled.txt", "test.txt")


def _remove_stale(out: Path) -> None:
    """An earlier run's files (perhaps more clips) must not mix with this run's, nor survive a
    failed run as annotations of videos that are gone."""
    for pattern in STALE:
        for path in out.glob(pattern):
            path.unlink()


def _encode_all(cfg: SynthConfig, scenes: list[Scene], videos: Path,
                progress: bool) -> tuple[list[tuple[float, float]], int]:
    """Encode every scene; returns per-clip (wall, CPU) seconds and the processes used."""
    workers = min(cfg.workers or os.cpu_count() or 1, len(scenes))
    # x264 threads only help when the pool leaves cores idle.
    threads = max(1, (os.cpu_count() or 1) // workers)
    bar = tqdm(total=len(scenes), unit="clip", desc="synth", disable=not progress)
    seconds = []
    try:
        if workers == 1:  # no pool: spares the process start-up for tiny runs
            for scene in scenes:
                seconds.append(encode_clip(cfg, scene, str(videos), threads))
                bar.update()
            return seconds, 1
        # "spawn": a fork of a parent that runs Ray or torch threads is not safe.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(encode_clip, cfg, s, str(videos), threads) for s in scenes]
            try:
                for future in as_completed(futures):
                    seconds.append(future.result())
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return seconds, workers
    finally:
        bar.close()


def generate(cfg: SynthConfig, out: Path, progress: bool = True) -> dict:
    """Write the synthetic benchmark described by ``cfg`` into ``out``; return a summary.

    Existing outputs in ``out`` are replaced. The annotations, lists and ``meta.json`` depend only
    on ``cfg`` (not on ``cfg.workers``), so the same config always gives the same files.
    With more than one worker the pool uses "spawn": a script calling this must guard its
    entry point with ``if __name__ == "__main__":`` (the ``dmt`` command does).
    """
    check_config(cfg)
    start = time.perf_counter()
    scenes = [sample_scene(cfg, i) for i in range(cfg.clips)]  # fails early on impossible layouts
    out = Path(out)
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    seconds, workers = _encode_all(cfg, scenes, videos, progress)
    wall = time.perf_counter() - start
    splits = split_ids(cfg)
    paths = write_annotations(out, cfg, scenes, splits)

    test = set(splits["test"])
    scored = [s for s in scenes if s.id in test][:BASELINE_CLIPS]
    baselines = baseline_scores([vggss_entry(cfg, s) for s in scored],
                                [[o.box(cfg.frame_size) for o in s.objects] for s in scored],
                                ) if scored else {}
    return {
        "out": str(out), "videos": str(videos),
        "annotations": str(paths["annotations"]), "meta": str(paths["meta"]),
        "flickr_xml": str(paths["flickr_xml"]),
        "lists": {name: str(paths[name]) for name in splits},
        "clips": cfg.clips, **{name: len(ids) for name, ids in splits.items()},
        "categories": [c.name for c in categories_of(cfg)],
        "frames_per_clip": num_frames(cfg),
        "workers": workers,
        "seconds": wall,
        "seconds_per_clip": sum(w for w, _ in seconds) / len(seconds),
        "cpu_seconds_per_clip": sum(c for _, c in seconds) / len(seconds),
        "baselines": baselines,
    }
