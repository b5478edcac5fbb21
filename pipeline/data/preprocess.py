"""Raw videos -> Parquet shards, with Ray Data (or a plain loop), resumable, nothing lost.

    summary = run_preprocess("data/raw/videos", "data/raw/shards",
                             annotations="vggss.json", fmt="vggss", lists="metadata/",
                             data=cfg.data)

Pipeline (``engine="ray"``)::

    ray.data.from_items(groups of planned clips)  # id, path, split, annotation JSON, error
      .map_batches(DecodeAndWrite(opts, tmp, batch), batch_size=1,
                   compute=TaskPoolStrategy(size=data.decode_concurrency), num_cpus=1)
      .materialize()                              # one row of counts per group

The pending clips are cut into groups of at most ``rows_per_file`` (whole rounds of
``decode_concurrency`` tasks, see ``engines.clip_groups``); each task decodes its group with
``ClipDecoder`` (``decode_batch_size`` at a time) and writes the good rows as one Parquet shard
and the failed ones as a small JSONL quarantine fragment, both atomically (temp name +
``os.replace``) under a name derived from the clip keys they hold (a retried task rewrites the
same files). ``ClipDecoder`` never raises: a clip that fails comes back as a row with ``error``
set. Nothing but a few counters returns to the driver, so memory does not grow with the clip
count.

Nothing lost, nothing duplicated, rerun-safe:

- The plan (every input, annotation errors and duplicate ids already marked) is fingerprinted
  with the decode options and the videos' size/mtime. Work goes to ``.<out>.partial/`` next to
  ``out``; a rerun with the same fingerprint keeps the shards/fragments already there
  (unreadable ones are deleted) and decodes only the clips not yet in any of them; another
  fingerprint starts over. At the end the shards are checked against the plan (every input
  exactly once, in a shard or in the quarantine, no id twice in the shards), ``quarantine.jsonl``
  and ``summary.json`` are written, and the folder is swapped into ``out`` by rename (in object
  storage, ``out="s3://bucket/shards"``, by a copy: see :mod:`pipeline.data.resume`).
- ``out`` already holding a complete result of the same fingerprint is left alone
  (``summary["up_to_date"]``); ``force=True`` redoes it.
- Ids named by the id lists or the annotations without a video are reported in
  ``summary["missing"]``. No clip is ever replaced by another.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pipeline import locations
from pipeline.config import DataConfig, label_selector
from pipeline.data.decode import DecodeOptions
from pipeline.data.disk import disk_full
from pipeline.data.engines import run_local, run_ray
from pipeline.data.inputs import FramesAudio
from pipeline.data.plan import Plan, build_plan, clip_key, fingerprint
from pipeline.data.resume import (
    FRAGMENT_GLOB,
    PART_GLOB,
    QUARANTINE,
    STATE,
    SUMMARY,
    PreprocessError,
    install,
    open_partial,
    scan_folder,
    up_to_date,
)
from pipeline.data.summary import finalize, run_meta
from pipeline.data.writer import atomic_write_bytes, write_shard
from pipeline.errors import no_space
from pipeline.locks import FolderLock

ENGINES = ("ray", "local")

# The pieces live in plan (inputs, fingerprint), writer (shards and quarantine fragments),
# engines (Ray Data, local loop), resume (the partial folder) and summary (the final check);
# the names other code used from this module are re-exported here.
__all__ = [
    "ENGINES", "FRAGMENT_GLOB", "PART_GLOB", "QUARANTINE", "STATE", "SUMMARY", "Plan",
    "PreprocessError", "build_plan", "fingerprint", "run_preprocess",
    "write_shard",
]


def run_preprocess(videos: str | Path | FramesAudio, out: str | Path | locations.ObjectPath, *,
                   annotations: str | Path | None = None, fmt: str = "synth",
                   lists: str | Path | None = None, data: Any = None,
                   opts: DecodeOptions | None = None, engine: str = "ray",
                   force: bool = False, progress: bool = False,
                   num_cpus_per_task: float = 1.0, config: dict | None = None) -> dict[str, Any]:
    """Decode every clip of ``videos`` (a folder or manifest of videos, or a
    :class:`FramesAudio` layout) into Parquet shards in ``out``; returns the summary.

    ``data`` is a ``DataConfig`` (batch size, concurrency, rows per file and the decode options
    come from it; ``opts`` overrides the latter). ``engine="ray"`` uses Ray Data (``ray.init()``
    is called if Ray is not running; it honours ``RAY_ADDRESS``), ``"local"`` the same code in
    this process. ``config`` (e.g. the whole run config as a dict) is recorded in the summary.
    A second run into ``out`` while one is live is refused (``FolderLockedError``).
    """
    if engine not in ENGINES:
        raise PreprocessError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    if data is None:
        data = DataConfig()
    out = locations.location(out, "out").resolve()  # a folder, or an s3:// (etc.) prefix
    # one writer: two runs into one folder would interleave rows in its partial folder
    with FolderLock(out.with_name(f".{out.name}.lock"), f"dmt preprocess into {out}"):
        return _preprocess(videos, out, annotations, fmt, lists, data,
                           opts or DecodeOptions.from_config(data), engine, force, progress,
                           num_cpus_per_task, config)


def _preprocess(videos: str | Path | FramesAudio, out: Path, annotations: str | Path | None,
                fmt: str, lists: str | Path | None, data: Any, opts: DecodeOptions, engine: str,
                force: bool, progress: bool, num_cpus_per_task: float,
                config: dict | None) -> dict[str, Any]:
    rows_per_file = int(getattr(data, "rows_per_file", 1000))
    tmp = out.with_name(f".{out.name}.partial")
    t0 = time.perf_counter()

    plan = build_plan(videos, annotations=annotations, fmt=fmt, lists=lists,
                      labeled_without_box=getattr(data, "labeled_without_box", "unlabeled"),
                      test_without_box=getattr(data, "test_without_box", "exclude"))
    fp = fingerprint(plan, opts, rows_per_file)
    t_plan = time.perf_counter() - t0

    current = up_to_date(out, fp, force)
    if current is not None:
        return current
    finished = open_partial(tmp, out, fp, force)
    if finished is not None:
        return finished

    done, quarantined, notes = scan_folder(tmp, repair=True)
    done_keys = set(done) | {clip_key(r["id"], r["path"]) for r in quarantined}
    pending = [it for it in plan.items if clip_key(it["id"], it["path"]) not in done_keys]
    t1 = time.perf_counter()
    try:
        if pending:
            _decode(engine, pending, tmp, opts, data, num_cpus_per_task, progress)
        t_decode = time.perf_counter() - t1

        t2 = time.perf_counter()
        meta = run_meta(engine, done_keys, pending, notes, opts=opts, data=data,
                        config=config, videos=videos, t_plan=t_plan, t_decode=t_decode)
        summary = finalize(tmp, plan, fp, meta)
        summary["timings"]["finalize_s"] = round(time.perf_counter() - t2, 3)
        summary["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
        atomic_write_bytes(tmp / SUMMARY, (json.dumps(summary, indent=2) + "\n").encode())
    except Exception as exc:
        if no_space(exc) and isinstance(tmp, Path):
            raise disk_full(tmp, len(plan.items), opts) from None
        raise
    install(tmp, out)
    summary["up_to_date"] = False
    return summary


def _decode(engine: str, pending: list[dict[str, Any]], folder: Path, opts: DecodeOptions,
            data: Any, num_cpus: float, progress: bool) -> None:
    """Decode and write the pending clips into ``folder`` with the chosen engine."""
    batch_size = int(getattr(data, "decode_batch_size", 16))
    rows_per_file = int(getattr(data, "rows_per_file", 1000))
    if engine == "ray":
        run_ray(pending, folder, opts, batch_size=batch_size,
                concurrency=int(getattr(data, "decode_concurrency", 2)),
                rows_per_file=rows_per_file, num_cpus=num_cpus, progress=progress,
                label_selector=label_selector(getattr(data, "nodes", "")))
    else:
        run_local(pending, folder, opts, batch_size=batch_size, rows_per_file=rows_per_file)
