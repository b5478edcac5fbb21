"""Reading preprocessed shards: the one reading API of the package (Ray-free; the training
streams read the same files through ``pipeline.train.data.ray_dataset``). Every reader goes
through :func:`shard_files`, which checks the schema.

    from pipeline.data import reader
    files = reader.shard_files("data/demo/shards")        # sorted, schema version checked
    reader.split_counts("data/demo/shards")               # {"labeled": 32, ...}
    table = reader.read_shards("data/demo/shards", split="test")   # pyarrow Table
    ex = reader.row_to_example(table.slice(0, 1).to_pylist()[0])   # frame, waveform, boxes
    for batch in reader.iter_batches(shards, convert, split="test", batch_size=32): ...

Training, evaluation, ``dmt localize``'s heatmap clips and the benchmark all read through these
functions; the conversion of rows into model batches is ``pipeline.engine.batches``. A shards
folder may be an object-storage URI (``s3://bucket/shards``, see :mod:`pipeline.locations`):
pyarrow and Ray Data read it through the URI's filesystem.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pipeline import locations
from pipeline.data import schema
from pipeline.data.codecs import decode_jpeg, decode_pcm16

SPLITS = ("labeled", "unlabeled", "test")
BATCH_COLUMNS = ["id", "split", "frame_jpeg", "audio", "boxes", "boxes_256", "box_format",
                 "has_boxes"]  # what a training or evaluation batch is built from


def load_summary(path: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of a shards folder ({} when there is none)."""
    p = locations.location(path) / "summary.json"
    if not p.is_file():
        return {}
    return json.loads(p.read_text())


def load_quarantine(path: str | Path) -> list[dict[str, Any]]:
    """The ``quarantine.jsonl`` records of a shards folder (id, path, split, reason)."""
    p = locations.location(path) / "quarantine.jsonl"
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def is_shards_folder(path: str | Path) -> bool:
    """A finished ``dmt preprocess`` output: summary.json and at least one shard."""
    p = locations.location(path)
    return p.is_dir() and (p / "summary.json").is_file() and any(p.glob("part-*.parquet"))


def shard_files(path: str | Path | locations.ObjectPath) -> list[locations.Location]:
    """The Parquet shards of a folder (or one shard file), schema version checked, in the order
    of their clips: by each file's smallest id (from its footer's statistics), not by name.
    A shard's name hashes its clips' source paths, so the same clips preprocessed in another
    folder sort another way by name; every reader (the training streams included) reads the
    files in this order, so a run does not depend on where its data sits."""
    path = locations.location(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        summary = load_summary(path)
        if summary:
            schema.check_version(summary.get("schema_version"), f"{path}/summary.json")
        files = list(path.glob("part-*.parquet"))
    else:
        raise FileNotFoundError(f"{path}: no shards folder (run `dmt preprocess` first)")
    keyed = []
    for f in files:
        fs, where = locations.fs_path(f)
        meta = pq.read_metadata(where, filesystem=fs)
        schema.check_schema(meta.schema.to_arrow_schema(), str(f))
        keyed.append((_first_id(meta), str(f), f))
    return [f for _, _, f in sorted(keyed, key=lambda k: k[:2])]


def _first_id(meta: pq.FileMetaData) -> str:
    """The smallest ``id`` of a shard from its row groups' statistics ('' when it has none)."""
    leaf = [meta.schema.column(j).path for j in range(meta.num_columns)].index("id")
    mins = []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(leaf).statistics
        if stats is None or not stats.has_min_max:
            return ""
        mins.append(stats.min)
    return min(mins, default="")


def shard_dataset(path: str | Path) -> pads.Dataset:
    """A pyarrow dataset over the checked shard files (nothing else in the folder)."""
    fs, files = filesystem_and_paths(shard_files(path))
    if not files:
        raise FileNotFoundError(f"{path}: no Parquet shards (run `dmt preprocess` first)")
    return pads.dataset(files, format="parquet", filesystem=fs)


def filesystem_and_paths(files: list[locations.Location]) -> tuple[Any, list[str]]:
    """The shards' filesystem (None: local) and their paths on it, for pyarrow and Ray Data."""
    if files and locations.is_remote(files[0]):
        return files[0].fs, [f.path for f in files]
    return None, [str(f) for f in files]


def split_counts(path: str | Path) -> dict[str, int]:
    """Rows per split, from one small column (no frames read)."""
    column = shard_dataset(path).to_table(columns=["split"]).column("split")
    values, counts = np.unique(column.to_numpy(zero_copy_only=False), return_counts=True)
    found = dict(zip(values, counts, strict=True))
    return {s: int(found.get(s, 0)) for s in SPLITS}


def split_ids(path: str | Path, split: str) -> list[str]:
    """The sorted ids of one split."""
    table = shard_dataset(path).to_table(columns=["id"], filter=pads.field("split") == split)
    return sorted(table.column("id").to_pylist())


def boxless_ids(path: str | Path, split: str) -> list[str]:
    """Ids of ``split`` rows without a box: none in shards of this schema version (planning moves
    them out of labeled and test); a guard against shards edited or written by hand, whose
    empty ground-truth maps would teach and score "nothing sounds here"."""
    table = shard_dataset(path).to_table(
        columns=["id"], filter=(pads.field("split") == split) & ~pads.field("has_boxes"))
    return sorted(table.column("id").to_pylist())


def carve_validation(ids: list[str], fraction: float, seed: int) -> list[str]:
    """A seeded, order-independent choice of ``fraction`` of ``ids`` (at least one when
    fraction > 0, and always leaving one for training)."""
    if fraction <= 0 or len(ids) < 2:
        return []
    n = min(len(ids) - 1, max(1, round(len(ids) * fraction)))
    order = np.random.default_rng(seed).permutation(len(ids))
    pool = sorted(ids)
    return sorted(pool[i] for i in order[:n])


def read_clips(path: str | Path, ids: list[str]) -> list[dict[str, Any]]:
    """A few rows by id as plain dicts, in the order of ``ids`` (heatmap clips)."""
    if not ids:
        return []
    table = shard_dataset(path).to_table(filter=pads.field("id").isin(ids))
    rows = {r["id"]: r for r in table.to_pylist()}
    return [rows[i] for i in ids if i in rows]


def split_filter(split: str | None, val_ids: list[str] | None = None):
    """The pyarrow filter of a split; ``val`` is ``val_ids`` among the labeled rows, and
    ``labeled`` excludes them when given."""
    if split is None:
        return None
    if split == "val":
        return (pads.field("split") == "labeled") & pads.field("id").isin(list(val_ids or []))
    expr = pads.field("split") == split
    if split == "labeled" and val_ids:
        expr = expr & ~pads.field("id").isin(list(val_ids))
    return expr


def iter_batches(path: str | Path, convert: Callable[[dict[str, np.ndarray]], dict], *,
                 split: str | None = None, batch_size: int = 32,
                 val_ids: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """``convert`` applied to numpy column batches of exactly ``batch_size`` rows (the last may
    be smaller), in file order, memory bounded by one batch. Columns: :data:`BATCH_COLUMNS`."""
    scanner = shard_dataset(path).scanner(columns=BATCH_COLUMNS, batch_size=batch_size,
                                          filter=split_filter(split, val_ids))
    pending: list[pa.RecordBatch] = []
    rows = 0
    for record_batch in scanner.to_batches():
        pending.append(record_batch)
        rows += record_batch.num_rows
        while rows >= batch_size:
            table = pa.Table.from_batches(pending)
            yield convert(_columns(table.slice(0, batch_size)))
            rest = table.slice(batch_size)
            pending, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield convert(_columns(pa.Table.from_batches(pending)))


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    out = {}
    for name in table.column_names:
        values = table.column(name).to_pylist()
        arr = np.empty(len(values), dtype=object)  # np.asarray would stack equal-length lists
        arr[:] = values
        out[name] = arr
    return out


def read_shards(path: str | Path, *, columns: list[str] | None = None,
                split: str | None = None) -> pa.Table:
    """All rows of the shards as one pyarrow Table (optionally some columns / one split).

    Loads everything into memory: fine for test sets and column subsets; for training sets use
    :func:`iter_batches`.
    """
    if not shard_files(path):
        names = columns or schema.COLUMNS
        return pa.schema([schema.SCHEMA.field(n) for n in names],
                         metadata=schema.SCHEMA.metadata).empty_table()
    return shard_dataset(path).to_table(columns=columns, filter=split_filter(split))


def _boxes(value: Any, dtype: Any) -> np.ndarray:
    if value is None:
        return np.zeros((0, 4), dtype)
    rows = [np.asarray(b, dtype).reshape(4) for b in value]
    return np.stack(rows) if rows else np.zeros((0, 4), dtype)


def _bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return value.tobytes()
    return bytes(value)


def row_to_example(row: dict[str, Any]) -> dict[str, Any]:
    """One shard row -> arrays at their stored size (for users and tests; training batches
    are ``pipeline.engine.batches.ToTrainingBatch``).

    Returns ``id``, ``split``, ``frame`` (uint8 HxWx3 RGB), ``waveform`` (float32, in [-1, 1]),
    ``sample_rate``, ``boxes`` (float32 [k, 4] normalised xmin, ymin, xmax, ymax),
    ``boxes_256`` (int32 [k, 4], Flickr only), ``box_format``, ``has_boxes``, ``category``,
    and ``spectrogram`` (float32 [bins, frames] or None).
    """
    spec = None
    spec_bytes = _bytes(row.get("spectrogram"))
    if spec_bytes:
        spec = np.frombuffer(spec_bytes, schema.SPEC_DTYPE).astype(np.float32).reshape(
            int(row["spec_bins"]), int(row["spec_frames"]))
    boxes = _boxes(row.get("boxes"), np.float32)
    return {
        "id": str(row["id"]), "split": str(row.get("split") or ""),
        "frame": decode_jpeg(_bytes(row["frame_jpeg"])),
        "waveform": decode_pcm16(_bytes(row["audio"])),
        "sample_rate": int(row["sample_rate"]), "boxes": boxes,
        "boxes_256": _boxes(row.get("boxes_256"), np.int32),
        "box_format": str(row.get("box_format") or ""), "has_boxes": bool(len(boxes)),
        "category": str(row.get("category") or ""), "spectrogram": spec,
    }
