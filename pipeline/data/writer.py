"""Decoded rows -> Parquet shards (good rows) and JSONL quarantine fragments (failed rows).

Every file is written to a temp name and renamed into place (an object in object storage is
written whole), under a name derived from the clip keys it holds, so a retried write task
rewrites the same files. See :mod:`pipeline.data.preprocess`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import locations
from pipeline.data import schema
from pipeline.data.plan import clip_key

# ---------------------------------------------------------------- writing

def atomic_write_bytes(path: Path | locations.ObjectPath, data: bytes) -> None:
    def write(target: Any, fs: Any) -> None:
        if fs is None:
            Path(target).write_bytes(data)
        else:
            with fs.open_output_stream(target) as f:
                f.write(data)

    locations.write_atomically(path, write)


ROW_GROUP_ROWS = 128  # rows a streamed shard buffers per Parquet row group (~12 MB)
DICTIONARY_COLUMNS = ["split", "category", "box_format", "frame_decoder", "audio_decoder"]


def _piece_name(keys: Iterable[str]) -> str:
    return hashlib.sha1("\n".join(sorted(keys)).encode()).hexdigest()[:16]


def write_group(tables: Iterable[pa.Table], keys: list[str],
                folder: Path | locations.ObjectPath) -> dict[str, Any]:
    """Decoded tables of one group of clips (``keys``: their clip keys, one row each) -> one
    shard and one quarantine fragment, streamed: rows are written as they come, in row groups of
    ``ROW_GROUP_ROWS``, so a task holds one decode batch and one row group, not the whole group
    (peak memory no longer grows with the group's size). Named as :func:`write_shard` names
    the same rows, and written to a temp name then renamed; returns counts and file names."""
    name, tables = _piece_name(keys), iter(tables)
    bad: list[dict[str, Any]] = []
    counts = {"rows": 0}

    def good_rows() -> Iterator[pa.Table]:
        """The good rows of what is left of ``tables``, ``ROW_GROUP_ROWS`` at a time."""
        held: list[pa.Table] = []
        for table in tables:
            table = table.select(schema.DECODED_SCHEMA.names).cast(schema.DECODED_SCHEMA)
            failed = pc.is_valid(table["error"])
            bad.extend(table.filter(failed).select(["id", "path", "split", "error"]).to_pylist())
            held.append(table.filter(pc.invert(failed)).drop_columns(["error"]))
            if sum(t.num_rows for t in held) >= ROW_GROUP_ROWS:
                yield pa.concat_tables(held).cast(schema.SCHEMA)
                held = []
        if any(t.num_rows for t in held):
            yield pa.concat_tables(held).cast(schema.SCHEMA)

    pending = good_rows()
    first = next(pending, None)  # no part file for no good rows (it yields only non-empty)
    files = []
    if first is not None:
        final = folder / f"part-{name}.parquet"

        def write(target: Any, fs: Any) -> None:
            with pq.ParquetWriter(target, schema.SCHEMA, filesystem=fs, compression="zstd",
                                  use_dictionary=DICTIONARY_COLUMNS) as writer:
                for table in itertools.chain([first], pending):
                    writer.write_table(table)
                    counts["rows"] += table.num_rows

        locations.write_atomically(final, write)
        files.append(final.name)
    if bad:
        files.append(_write_quarantine(bad, folder / f"quarantine-{name}.jsonl"))
    return {"rows": counts["rows"], "quarantined": len(bad), "files": files}


def _write_quarantine(rows: list[dict[str, Any]], frag: Path | locations.ObjectPath) -> str:
    """Failed decoded rows (id, path, split, error) -> a JSONL quarantine fragment."""
    atomic_write_bytes(frag, ("\n".join(json.dumps(
        {"id": r["id"], "path": r["path"], "split": r["split"], "reason": r["error"]})
        for r in rows) + "\n").encode())
    return frag.name


def _write_piece(table: pa.Table, folder: Path | locations.ObjectPath) -> dict[str, Any]:
    """One slice of decoded rows -> ``part-<hash>.parquet`` (good rows) and
    ``quarantine-<hash>.jsonl`` (failed rows), each written to a temp name then renamed. The
    hash is over the slice's clip keys, so a retried task rewrites the same files."""
    name = _piece_name(clip_key(i, p) for i, p in zip(table["id"].to_pylist(),
                                                      table["path"].to_pylist(), strict=True))
    failed = pc.is_valid(table["error"])
    good = table.filter(pc.invert(failed)).drop_columns(["error"])
    bad = table.filter(failed)
    files = []
    if good.num_rows:
        good = good.cast(schema.SCHEMA)  # carries the version metadata
        final = folder / f"part-{name}.parquet"
        locations.write_atomically(final, lambda target, fs: pq.write_table(
            good, target, filesystem=fs, compression="zstd",
            use_dictionary=DICTIONARY_COLUMNS))
        files.append(final.name)
    if bad.num_rows:
        files.append(_write_quarantine(bad.select(["id", "path", "split", "error"]).to_pylist(),
                                       folder / f"quarantine-{name}.jsonl"))
    return {"rows": good.num_rows, "quarantined": bad.num_rows, "files": files}


def write_shard(tables: Iterable[pa.Table], folder: str | Path | locations.ObjectPath,
                max_rows: int | None = None) -> dict[str, Any]:
    """Decoded tables (:data:`schema.DECODED_SCHEMA`) -> shard(s) of the good rows and
    quarantine fragment(s) of the failed ones; returns counts and file names.

    With ``max_rows``, the rows are cut into ``ceil(n / max_rows)`` equal slices, so no shard
    exceeds ``max_rows`` rows."""
    folder = locations.location(folder)
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
