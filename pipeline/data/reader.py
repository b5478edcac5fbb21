"""Reading preprocessed shards (what the training and evaluation loaders use).

    from pipeline.data import shard_files, read_shards, row_to_example, ray_dataset
    files = shard_files("data/demo/shards")              # checks the schema version
    table = read_shards("data/demo/shards", split="test")  # pyarrow Table (small sets)
    ex = row_to_example(table.slice(0, 1).to_pylist()[0])
    ex["frame"]     # uint8 HxWx3 RGB
    ex["waveform"]  # float32 [audio_samples] in [-1, 1]
    ds = ray_dataset("data/demo/shards", columns=[...])  # ray.data.Dataset for Train

``row_to_example`` accepts a row from ``Table.to_pylist()``, ``ParquetFile.iter_batches``, or
Ray Data (``iter_rows`` / ``iter_batches(batch_format="numpy")`` rows), so one function serves
every loader.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data import schema
from pipeline.data.codecs import decode_jpeg, decode_pcm16


def load_summary(path: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of a shards folder ({} when there is none)."""
    p = Path(path) / "summary.json"
    if not p.is_file():
        return {}
    return json.loads(p.read_text())


def load_quarantine(path: str | Path) -> list[dict[str, Any]]:
    """The ``quarantine.jsonl`` records of a shards folder (id, path, split, reason)."""
    p = Path(path) / "quarantine.jsonl"
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def shard_files(path: str | Path, *, check: bool = True) -> list[Path]:
    """The Parquet shards of a folder (or one shard file), sorted, schema version checked."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        summary = load_summary(path)
        if check and summary and summary.get("schema_version") != schema.SCHEMA_VERSION:
            raise schema.SchemaVersionError(
                f"{path}/summary.json: schema version {summary.get('schema_version')}, this "
                f"code reads version {schema.SCHEMA_VERSION}; re-run `dmt preprocess`")
        files = sorted(path.glob("part-*.parquet"))
    else:
        raise FileNotFoundError(f"{path}: no shards folder (run `dmt preprocess` first)")
    if check:
        for f in files:
            schema.check_schema(pq.read_schema(f), str(f))
    return files


def read_shards(path: str | Path, *, columns: list[str] | None = None,
                split: str | None = None) -> pa.Table:
    """All rows of the shards as one pyarrow Table (optionally some columns / one split).

    Loads everything into memory: fine for the synthetic benchmark, test sets and column
    subsets; for large training sets use :func:`iter_rows` or :func:`ray_dataset`.
    """
    files = shard_files(path)
    cols = None
    if columns is not None:
        cols = list(dict.fromkeys(list(columns) + (["split"] if split else [])))
    tables = [pq.read_table(f, columns=cols) for f in files]
    if not tables:
        names = cols or schema.COLUMNS
        return pa.schema([schema.SCHEMA.field(n) for n in names],
                         metadata=schema.SCHEMA.metadata).empty_table()
    table = pa.concat_tables(tables)
    if split is not None:
        import pyarrow.compute as pc

        table = table.filter(pc.equal(table["split"], split))
        if columns is not None and "split" not in columns:
            table = table.drop_columns(["split"])
    return table


def iter_rows(path: str | Path, *, columns: list[str] | None = None,
              split: str | None = None, batch_size: int = 64) -> Iterator[dict[str, Any]]:
    """Stream rows (dicts) shard by shard with bounded memory."""
    for f in shard_files(path):
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
            for row in batch.to_pylist():
                if split is None or row.get("split") == split:
                    yield row


def ray_dataset(path: str | Path, *, columns: list[str] | None = None, **read_kwargs: Any):
    """``ray.data.read_parquet`` over the checked shard files (one footer reader on small
    machines unless ``RAY_DATA_PARQUET_FOOTER_NUM_ACTORS`` is set)."""
    os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1")
    import ray

    files = [str(f) for f in shard_files(path)]
    if not files:
        raise FileNotFoundError(f"{path}: no shards")
    return ray.data.read_parquet(files, columns=columns, **read_kwargs)


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
    """One shard row -> arrays ready for a model.

    Returns ``id``, ``split``, ``frame`` (uint8 HxWx3 RGB), ``waveform`` (float32, in [-1, 1]),
    ``sample_rate``, ``boxes`` (float32 [k, 4] normalised xmin, ymin, xmax, ymax),
    ``boxes_256`` (int32 [k, 4], Flickr only), ``box_format``, ``has_boxes``, ``category``,
    and ``spectrogram`` (float32 [bins, frames] or None).
    """
    frame = decode_jpeg(_bytes(row["frame_jpeg"]))
    wave = decode_pcm16(_bytes(row["audio"]))
    spec = None
    spec_bytes = _bytes(row.get("spectrogram"))
    if spec_bytes:
        spec = np.frombuffer(spec_bytes, schema.SPEC_DTYPE).astype(np.float32).reshape(
            int(row["spec_bins"]), int(row["spec_frames"]))
    boxes = _boxes(row.get("boxes"), np.float32)
    return {
        "id": str(row["id"]),
        "split": str(row.get("split") or ""),
        "frame": frame,
        "waveform": wave,
        "sample_rate": int(row["sample_rate"]),
        "boxes": boxes,
        "boxes_256": _boxes(row.get("boxes_256"), np.int32),
        "box_format": str(row.get("box_format") or ""),
        "has_boxes": bool(len(boxes)),
        "category": str(row.get("category") or ""),
        "spectrogram": spec,
    }
