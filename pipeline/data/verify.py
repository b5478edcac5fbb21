"""A shards folder checked before any training starts: every file readable, of this schema
version, as ``summary.json`` lists it, and every split the run reads non-empty.

Without it a truncated Parquet file, a shard left by another schema version or another run, or
an empty split surfaced as a stack trace from a Ray Data task or a training worker mid-epoch,
minutes into the run (or, for an empty unlabeled split, as a hang at the start of stage 2).
The checks read footers and the one small ``split`` column, not the frames: about 1 ms a file.

    summary = verify_shards("data/demo/shards", needs=("labeled", "unlabeled", "test"))
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import locations
from pipeline.data import schema
from pipeline.errors import ShardsError

__all__ = ["ShardsError", "verify_shards"]


def _summary(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    if not path.is_file():
        raise ShardsError(f"{folder}: no summary.json, not a finished `dmt preprocess` output "
                          f"(interrupted? run it again: it resumes)")
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ShardsError(f"{path}: not valid JSON ({exc}); re-run `dmt preprocess`") from None
    if not isinstance(summary, dict):
        raise ShardsError(f"{path}: expected a JSON object, found {type(summary).__name__}")
    schema.check_version(summary.get("schema_version"), str(path))
    return summary


def _file_splits(path: Path, rows_listed: int | None) -> Counter:
    """The split counts of one shard file, after its footer, schema and row count are checked."""
    try:
        fs, where = locations.fs_path(path)
        handle = pq.ParquetFile(where, filesystem=fs)
    except (pa.ArrowException, OSError) as exc:
        raise ShardsError(f"{path}: not a readable Parquet file, truncated or corrupt "
                          f"({str(exc).splitlines()[0][:160]}); re-run `dmt preprocess`, "
                          f"which rewrites it") from None
    schema.check_schema(handle.schema_arrow, str(path))
    rows = handle.metadata.num_rows
    if rows_listed is not None and rows != rows_listed:
        raise ShardsError(f"{path}: {rows} rows, summary.json lists {rows_listed}; the file was "
                          f"replaced after preprocessing; re-run `dmt preprocess`")
    try:
        column = handle.read(columns=["split"]).column("split").to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise ShardsError(f"{path}: column 'split' unreadable, corrupt file "
                          f"({str(exc).splitlines()[0][:160]})") from None
    return Counter(column)


def verify_shards(folder: str | Path | locations.ObjectPath,
                  needs: Iterable[str] = ()) -> dict[str, Any]:
    """The folder's summary, once every check passed; :class:`ShardsError` naming the file
    and what is wrong otherwise. ``needs``: splits that must hold at least one row. ``folder``
    may be an object-storage URI (``s3://bucket/shards``)."""
    folder = locations.location(folder)
    if not folder.is_dir():
        raise ShardsError(f"{folder}: no shards folder (run `dmt preprocess` first)")
    summary = _summary(folder)
    listed = {s["file"]: s.get("rows") for s in summary.get("shards", [])}
    present = {p.name for p in folder.glob("part-*.parquet")}
    if missing := sorted(set(listed) - present):
        raise ShardsError(f"{folder}: {len(missing)} shard(s) listed in summary.json are "
                          f"missing (e.g. {missing[0]}); re-run `dmt preprocess`")
    if listed and (foreign := sorted(present - set(listed))):
        raise ShardsError(f"{folder / foreign[0]}: a shard summary.json does not list "
                          f"({len(foreign)} such file(s)), written by another run; remove it "
                          f"or re-run `dmt preprocess` into an empty folder")
    if not present:
        raise ShardsError(f"{folder}: no Parquet shards (part-*.parquet)")
    counts: Counter = Counter()
    for name in sorted(present):
        counts += _file_splits(folder / name, listed.get(name))
    for split in needs:
        if counts.get(split, 0) == 0:
            raise ShardsError(
                f"{folder}: split {split!r} is empty (rows per split: "
                f"{dict(sorted(counts.items()))}), and this run reads it; check the id lists "
                f"(data.lists) or preprocess more clips")
    return summary
