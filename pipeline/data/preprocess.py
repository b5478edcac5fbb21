"""Raw videos -> Parquet shards, with Ray Data (or a plain loop), resumable, nothing lost.

    summary = run_preprocess("data/raw/videos", "data/raw/shards",
                             annotations="vggss.json", fmt="vggss", lists="metadata/",
                             data=cfg.data)

Pipeline (``engine="ray"``)::

    ray.data.from_items(planned clips)            # id, path, split, annotation JSON, error
      .map_batches(ClipDecoder(opts), batch_size=data.decode_batch_size,
                   compute=TaskPoolStrategy(size=data.decode_concurrency), num_cpus=1)
      .write_datasink(ShardSink(tmp, rows_per_file=data.rows_per_file, block_rows=batch))

``ClipDecoder`` never raises: a clip that fails comes back as a row with ``error`` set.
``ShardSink`` receives about ``rows_per_file`` rows per write task (Ray bundles decode
output blocks, one batch each, up to ``rows_per_file - batch_size + 1`` rows), cuts a bundle
that still came out larger into equal slices of at most ``rows_per_file`` rows, and writes
each slice's good rows as one Parquet shard and its failed ones as a small JSONL quarantine
fragment, both atomically (temp name + ``os.replace``) under a name derived from the clip
keys they hold (a retried task rewrites the same files). Nothing but a few counters returns
to the driver, so memory does not grow with the clip count.

Nothing lost, nothing duplicated, rerun-safe:

- The plan (every input, annotation errors and duplicate ids already marked) is fingerprinted
  with the decode options and the videos' size/mtime. Work goes to ``.<out>.partial/`` next to
  ``out``; a rerun with the same fingerprint keeps the shards/fragments already there
  (unreadable ones are deleted) and decodes only the clips not yet in any of them; another
  fingerprint starts over. At the end the shards are checked against the plan (every input
  exactly once, in a shard or in the quarantine, no id twice in the shards), ``quarantine.jsonl``
  and ``summary.json`` are written, and the folder is swapped into ``out`` by rename.
- ``out`` already holding a complete result of the same fingerprint is left alone
  (``summary["up_to_date"]``); ``force=True`` redoes it.
- Ids named by the id lists or the annotations without a video are reported in
  ``summary["missing"]``. No clip is ever replaced by another.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.data import schema
from pipeline.data.decode import ClipDecoder, DecodeOptions
from pipeline.data.formats import load_annotations, load_split_lists
from pipeline.data.inputs import list_inputs

SUMMARY = "summary.json"
QUARANTINE = "quarantine.jsonl"
STATE = "state.json"
PART_GLOB = "part-*.parquet"
FRAGMENT_GLOB = "quarantine-*.jsonl"
ENGINES = ("ray", "local")


class PreprocessError(RuntimeError):
    """The run cannot proceed or its result failed a consistency check."""


# ---------------------------------------------------------------- plan

@dataclass
class Plan:
    items: list[dict[str, Any]]
    missing: list[str]
    missing_by_split: dict[str, int]
    annotations: dict[str, Any]
    lists: dict[str, Any]
    stats: list[tuple[int, int]] = field(default_factory=list)  # (size, mtime_ns) per item


def _category(reason: str) -> str:
    return reason.split(":")[0].split(" (")[0].strip()


def build_plan(videos: str | Path, *, annotations: str | Path | None = None,
               fmt: str = "synth", lists: str | Path | None = None) -> Plan:
    """Every input clip with its split and annotation (JSON), sorted by (id, path)."""
    clips = list_inputs(videos)
    anns = load_annotations(fmt, annotations)
    splits = load_split_lists(lists)
    items: list[dict[str, Any]] = []
    stats: list[tuple[int, int]] = []
    first_path: dict[str, str] = {}
    for clip in clips:
        ann = anns.entries.get(clip.id)
        item = {"id": clip.id, "path": clip.path, "split": splits.split_of.get(clip.id, ""),
                "ann": json.dumps(ann.to_dict() if ann else {}, sort_keys=True), "error": ""}
        if clip.id in first_path:
            item["error"] = f"duplicate id: {clip.id!r} is also {first_path[clip.id]}"
        else:
            first_path[clip.id] = clip.path
        items.append(item)
        try:
            st = os.stat(clip.path)
            stats.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((-1, -1))
    have = set(first_path)
    named = set(splits.split_of) | set(anns.entries)
    missing = sorted(named - have)
    by_split = Counter(splits.split_of.get(m, "annotations_only") for m in missing)
    return Plan(
        items=items, missing=missing, missing_by_split=dict(sorted(by_split.items())),
        annotations={"format": fmt, "source": anns.source, "entries": len(anns.entries),
                     **anns.stats},
        lists={"source": str(lists) if lists else "", "files": splits.files,
               "split_conflicts": splits.conflicts},
        stats=stats)


def _key(clip_id: str, path: str) -> str:
    return f"{clip_id}\t{path}"


def fingerprint(plan: Plan, opts: DecodeOptions, rows_per_file: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"schema": schema.SCHEMA_VERSION, "opts": opts.to_dict(),
                         "rows_per_file": rows_per_file}, sort_keys=True).encode())
    for item, st in zip(plan.items, plan.stats, strict=True):
        h.update(json.dumps([item["id"], item["path"], item["split"], item["ann"],
                             item["error"], st]).encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


# ---------------------------------------------------------------- writing

def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.inprogress")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_piece(table: pa.Table, folder: Path) -> dict[str, Any]:
    """One slice of decoded rows -> ``part-<hash>.parquet`` (good rows) and
    ``quarantine-<hash>.jsonl`` (failed rows), each written to a temp name then renamed. The
    hash is over the slice's clip keys, so a retried task rewrites the same files."""
    keys = sorted(_key(i, p) for i, p in zip(table["id"].to_pylist(),
                                             table["path"].to_pylist(), strict=True))
    name = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:16]
    failed = pc.is_valid(table["error"])
    good = table.filter(pc.invert(failed)).drop_columns(["error"])
    bad = table.filter(failed)
    files = []
    if good.num_rows:
        good = good.cast(schema.SCHEMA)  # carries the version metadata
        final = folder / f"part-{name}.parquet"
        tmp = folder / f".part-{name}.{uuid.uuid4().hex[:8]}.inprogress"
        pq.write_table(good, tmp, compression="zstd",
                       use_dictionary=["split", "category", "box_format"])
        os.replace(tmp, final)
        files.append(final.name)
    if bad.num_rows:
        lines = [json.dumps({"id": r["id"], "path": r["path"], "split": r["split"],
                             "reason": r["error"]}) for r in
                 bad.select(["id", "path", "split", "error"]).to_pylist()]
        frag = folder / f"quarantine-{name}.jsonl"
        _atomic_write_bytes(frag, ("\n".join(lines) + "\n").encode())
        files.append(frag.name)
    return {"rows": good.num_rows, "quarantined": bad.num_rows, "files": files}


def write_shard(tables: Iterable[pa.Table], folder: str | Path,
                max_rows: int | None = None) -> dict[str, Any]:
    """Decoded tables (:data:`schema.DECODED_SCHEMA`) -> shard(s) of the good rows and
    quarantine fragment(s) of the failed ones; returns counts and file names.

    With ``max_rows``, the rows are cut into ``ceil(n / max_rows)`` equal slices, so no shard
    exceeds ``max_rows`` rows (Ray hands a write task at least ``rows_per_file`` rows, and
    sometimes a whole output block more)."""
    folder = Path(folder)
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return {"rows": 0, "quarantined": 0, "files": []}
    table = pa.concat_tables([t.select(schema.DECODED_SCHEMA.names).cast(schema.DECODED_SCHEMA)
                              for t in tables])
    n = table.num_rows
    pieces = max(1, -(-n // max_rows)) if max_rows else 1
    size = -(-n // pieces)
    result: dict[str, Any] = {"rows": 0, "quarantined": 0, "files": []}
    for start in range(0, n, size):
        r = _write_piece(table.slice(start, size), folder)
        result["rows"] += r["rows"]
        result["quarantined"] += r["quarantined"]
        result["files"] += r["files"]
    return result


def _shard_sink_class():
    from ray.data import Datasink

    class ShardSink(Datasink):
        """Writes each write task's rows with :func:`write_shard` (see the module docstring)."""

        def __init__(self, folder: str, rows_per_file: int, block_rows: int = 1):
            self.folder = str(folder)
            self.rows_per_file = int(rows_per_file)
            self.block_rows = max(1, int(block_rows))

        @property
        def min_rows_per_write(self) -> int:
            # Ray adds whole blocks (one decode batch each) until it reaches this count; aiming
            # one block short of rows_per_file makes full bundles land at <= rows_per_file, so
            # they become one shard instead of two half-size ones.
            return max(1, self.rows_per_file - self.block_rows + 1)

        def write(self, blocks, ctx) -> dict[str, Any]:
            from ray.data.block import BlockAccessor

            return write_shard((BlockAccessor.for_block(b).to_arrow() for b in blocks),
                               self.folder, max_rows=self.rows_per_file)

        def get_name(self) -> str:
            return "WriteShards"

    return ShardSink


def ShardSink(folder: str | Path, rows_per_file: int, block_rows: int = 1):  # noqa: N802
    """The Ray Data datasink (a factory, so importing this module does not import Ray)."""
    return _shard_sink_class()(str(folder), rows_per_file, block_rows)


def _ensure_ray() -> None:
    import ray

    if not ray.is_initialized():
        ray.init()  # honours RAY_ADDRESS; a new local instance sizes itself to the machine


def _run_ray(pending: list[dict[str, Any]], folder: Path, opts: DecodeOptions, *,
             batch_size: int, concurrency: int, rows_per_file: int, num_cpus: float,
             progress: bool) -> None:
    import ray

    _ensure_ray()
    ctx = ray.data.DataContext.get_current()
    old_bars = ctx.enable_progress_bars
    ctx.enable_progress_bars = progress
    try:
        n_blocks = max(1, min(len(pending), -(-len(pending) // batch_size)))
        ds = ray.data.from_items(pending, override_num_blocks=n_blocks)
        ds = ds.map_batches(ClipDecoder(opts), batch_size=batch_size, batch_format="pyarrow",
                            compute=ray.data.TaskPoolStrategy(size=concurrency),
                            num_cpus=num_cpus)
        ds.write_datasink(ShardSink(folder, rows_per_file, block_rows=batch_size),
                          ray_remote_args={"num_cpus": min(num_cpus, 0.25)})
    finally:
        ctx.enable_progress_bars = old_bars


def _run_local(pending: list[dict[str, Any]], folder: Path, opts: DecodeOptions, *,
               batch_size: int, rows_per_file: int) -> None:
    """The same decode + shard writing in this process (tests, debugging, the benchmark)."""
    decoder = ClipDecoder(opts)
    buffered: list[pa.Table] = []
    n = 0
    for start in range(0, len(pending), batch_size):
        table = decoder(pending[start:start + batch_size])
        buffered.append(table)
        n += table.num_rows
        if n >= max(1, rows_per_file - batch_size + 1):
            write_shard(buffered, folder, max_rows=rows_per_file)
            buffered, n = [], 0
    if buffered:
        write_shard(buffered, folder, max_rows=rows_per_file)


# ---------------------------------------------------------------- resume / finalize

def _scan(folder: Path, *, repair: bool) -> tuple[dict[str, dict], list[dict], list[str]]:
    """Keys already done in ``folder``: ``({key: shard info}, quarantine records, notes)``.
    With ``repair``, leftovers of an interrupted write (temp files, unreadable shards or
    fragments) are deleted so their clips are decoded again."""
    notes: list[str] = []
    done: dict[str, dict] = {}
    quarantined: list[dict] = []
    for tmp in folder.glob(".*.inprogress"):
        if repair:
            tmp.unlink(missing_ok=True)
            notes.append(f"removed partial write {tmp.name}")
    for f in sorted(folder.glob(PART_GLOB)):
        try:
            t = pq.read_table(f, columns=["id", "path", "split"])
            schema.check_schema(pq.read_schema(f), str(f))
        except Exception as exc:  # noqa: BLE001 - an unreadable shard is redone
            if not repair:
                raise PreprocessError(f"{f}: unreadable shard: {exc}") from None
            f.unlink(missing_ok=True)
            notes.append(f"removed unreadable shard {f.name}")
            continue
        for i, p, s in zip(t["id"].to_pylist(), t["path"].to_pylist(), t["split"].to_pylist(),
                           strict=True):
            k = _key(i, p)
            if k in done:
                raise PreprocessError(f"clip {i!r} ({p}) is in two shards: "
                                      f"{done[k]['file']} and {f.name}")
            done[k] = {"file": f.name, "split": s, "id": i}
    for f in sorted(folder.glob(FRAGMENT_GLOB)):
        try:
            recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            if not all({"id", "path", "reason"} <= set(r) for r in recs):
                raise ValueError("missing keys")
        except Exception:  # noqa: BLE001
            if not repair:
                raise PreprocessError(f"{f}: unreadable quarantine fragment") from None
            f.unlink(missing_ok=True)
            notes.append(f"removed unreadable quarantine fragment {f.name}")
            continue
        quarantined.extend(recs)
    return done, quarantined, notes


def _is_output_folder(path: Path) -> bool:
    """Only folders this module wrote (or empty ones) may be replaced."""
    if not path.is_dir():
        return False
    names = [p.name for p in path.iterdir()]
    if not names:
        return True
    if SUMMARY in names:
        try:
            return "schema_version" in json.loads((path / SUMMARY).read_text())
        except (OSError, json.JSONDecodeError):
            return False
    return all(n.startswith(("part-", "quarantine")) for n in names)


def _install(tmp: Path, out: Path) -> None:
    if out.exists():
        if not _is_output_folder(out):
            raise PreprocessError(
                f"{out} exists and is not a shards folder written by `dmt preprocess` (no "
                f"summary.json); choose another --out or empty it")
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("ray", "pyarrow", "decord2", "av", "numpy", "pillow", "torchaudio"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _finalize(tmp: Path, plan: Plan, fp: str, meta: dict[str, Any]) -> dict[str, Any]:
    done, quarantined, notes = _scan(tmp, repair=False)
    planned = Counter(_key(it["id"], it["path"]) for it in plan.items)
    q_keys = Counter(_key(r["id"], r["path"]) for r in quarantined)
    got = Counter(done.keys()) + q_keys
    lost = planned - got
    extra = got - planned
    if lost or extra:
        raise PreprocessError(
            f"shards do not match the plan: {sum(lost.values())} clips missing "
            f"(e.g. {list(lost)[:3]}), {sum(extra.values())} unexpected or duplicated "
            f"(e.g. {list(extra)[:3]}); rerun to resume")
    ids = Counter(info["id"] for info in done.values())
    dup_ids = [i for i, c in ids.items() if c > 1]
    if dup_ids:
        raise PreprocessError(f"ids in more than one shard row: {dup_ids[:5]}")

    quarantined.sort(key=lambda r: (r["id"], r["path"]))
    _atomic_write_bytes(tmp / QUARANTINE, "".join(
        json.dumps({k: r.get(k, "") for k in schema.QUARANTINE_FIELDS}) + "\n"
        for r in quarantined).encode())

    shards = []
    per_file = Counter(info["file"] for info in done.values())
    for f in sorted(tmp.glob(PART_GLOB)):
        shards.append({"file": f.name, "rows": per_file[f.name], "bytes": f.stat().st_size})
    shard_bytes = sum(s["bytes"] for s in shards)
    rows = len(done)

    splits: dict[str, dict[str, int]] = {}
    for it in plan.items:
        splits.setdefault(it["split"] or "none", {"inputs": 0, "rows": 0, "quarantined": 0})
        splits[it["split"] or "none"]["inputs"] += 1
    for info in done.values():
        splits[info["split"] or "none"]["rows"] += 1
    for r in quarantined:
        splits[r.get("split") or "none"]["quarantined"] += 1

    summary = {
        "schema_version": schema.SCHEMA_VERSION,
        "fingerprint": fp,
        "complete": True,
        "inputs": len(plan.items),
        "rows": rows,
        "quarantined": len(quarantined),
        "splits": dict(sorted(splits.items())),
        "quarantine_reasons": dict(Counter(_category(r["reason"]) for r in quarantined)
                                   .most_common()),
        "missing": plan.missing,
        "missing_count": len(plan.missing),
        "missing_by_split": plan.missing_by_split,
        "annotations": plan.annotations,
        "lists": plan.lists,
        "shards": shards,
        "shard_bytes": shard_bytes,
        "bytes_per_row": round(shard_bytes / rows, 1) if rows else 0.0,
        "notes": notes,
        **meta,
    }
    assert summary["inputs"] == summary["rows"] + summary["quarantined"]
    _atomic_write_bytes(tmp / SUMMARY, (json.dumps(summary, indent=2) + "\n").encode())
    for frag in tmp.glob(FRAGMENT_GLOB):
        frag.unlink()
    (tmp / STATE).unlink(missing_ok=True)
    return summary


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj):
        return asdict(obj)
    return obj


def run_preprocess(videos: str | Path, out: str | Path, *,
                   annotations: str | Path | None = None, fmt: str = "synth",
                   lists: str | Path | None = None, data: Any = None,
                   opts: DecodeOptions | None = None, engine: str = "ray",
                   force: bool = False, progress: bool = False,
                   num_cpus_per_task: float = 1.0, config: dict | None = None) -> dict[str, Any]:
    """Decode every clip under ``videos`` into Parquet shards in ``out``; returns the summary.

    ``data`` is a ``DataConfig`` (batch size, concurrency, rows per file and the decode options
    come from it; ``opts`` overrides the latter). ``engine="ray"`` uses Ray Data (``ray.init()``
    is called if Ray is not running; it honours ``RAY_ADDRESS``), ``"local"`` the same code in
    this process. ``config`` (e.g. the whole run config as a dict) is recorded in the summary.
    """
    if engine not in ENGINES:
        raise PreprocessError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    if data is None:
        from pipeline.config import DataConfig

        data = DataConfig()
    opts = opts or DecodeOptions.from_config(data)
    batch_size = int(getattr(data, "decode_batch_size", 16))
    concurrency = int(getattr(data, "decode_concurrency", 2))
    rows_per_file = int(getattr(data, "rows_per_file", 1000))
    out = Path(out).resolve()
    tmp = out.with_name(f".{out.name}.partial")
    t0 = time.perf_counter()

    plan = build_plan(videos, annotations=annotations, fmt=fmt, lists=lists)
    fp = fingerprint(plan, opts, rows_per_file)
    t_plan = time.perf_counter() - t0

    for stale in out.parent.glob(f".{out.name}.old-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if not force and (out / SUMMARY).is_file():
        try:
            old = json.loads((out / SUMMARY).read_text())
        except (OSError, json.JSONDecodeError):
            old = {}
        if (old.get("fingerprint") == fp and old.get("complete")
                and all((out / s["file"]).is_file() for s in old.get("shards", []))):
            old["up_to_date"] = True
            return old

    out.parent.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        state = {}
        for name in (SUMMARY, STATE):  # a complete summary wins over the run state
            try:
                state = json.loads((tmp / name).read_text())
                break
            except (OSError, json.JSONDecodeError):
                continue
        if force or state.get("fingerprint") != fp:
            shutil.rmtree(tmp)
        elif state.get("complete"):  # finished but not yet swapped in
            for frag in tmp.glob(FRAGMENT_GLOB):
                frag.unlink()
            _install(tmp, out)
            state["up_to_date"] = True
            return state
    tmp.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(tmp / STATE, json.dumps({"fingerprint": fp}).encode())

    done, quarantined, notes = _scan(tmp, repair=True)
    done_keys = set(done) | {_key(r["id"], r["path"]) for r in quarantined}
    pending = [it for it in plan.items if _key(it["id"], it["path"]) not in done_keys]
    t1 = time.perf_counter()
    if pending:
        if engine == "ray":
            _run_ray(pending, tmp, opts, batch_size=batch_size, concurrency=concurrency,
                     rows_per_file=rows_per_file, num_cpus=num_cpus_per_task,
                     progress=progress)
        else:
            _run_local(pending, tmp, opts, batch_size=batch_size, rows_per_file=rows_per_file)
    t_decode = time.perf_counter() - t1

    t2 = time.perf_counter()
    meta = {
        "engine": engine,
        "resumed": {"already_done": len(done_keys), "decoded_now": len(pending),
                    "repairs": notes},
        "decode_options": opts.to_dict(),
        "data_config": _jsonable(data),
        "config": config or {},
        "inputs_source": str(Path(videos).resolve()),
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "timings": {"plan_s": round(t_plan, 3), "decode_write_s": round(t_decode, 3)},
        "clips_per_s": round(len(pending) / t_decode, 2) if pending and t_decode > 0 else None,
    }
    summary = _finalize(tmp, plan, fp, meta)
    summary["timings"]["finalize_s"] = round(time.perf_counter() - t2, 3)
    summary["timings"]["total_s"] = round(time.perf_counter() - t0, 3)
    _atomic_write_bytes(tmp / SUMMARY, (json.dumps(summary, indent=2) + "\n").encode())
    _install(tmp, out)
    summary["up_to_date"] = False
    return summary
