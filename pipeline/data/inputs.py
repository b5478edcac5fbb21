"""Which videos to preprocess: a folder of videos, or a manifest (CSV / JSONL / Parquet).

A folder is searched recursively for files with a video extension (:data:`VIDEO_EXTENSIONS`;
hidden files and folders are skipped). A manifest has a ``path`` column (relative paths are
relative to the manifest's folder) and optionally an ``id`` column; without it a clip's id is
its file stem. Inputs are returned sorted by (id, path) so every run plans the same work.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg",
                              ".flv", ".wmv", ".3gp", ".ts", ".ogv"})
MANIFEST_EXTENSIONS = frozenset({".csv", ".jsonl", ".json", ".parquet"})


class InputError(ValueError):
    """The --videos argument cannot be used (names the folder/file and what is wrong)."""


@dataclass(frozen=True)
class ClipInput:
    id: str
    path: str  # absolute


def _from_folder(folder: Path) -> list[ClipInput]:
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
            out.append(ClipInput(p.stem, str(p.resolve())))
    return out


def _manifest_records(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh))
    if suffix in (".jsonl", ".json"):
        text = path.read_text()
        if suffix == ".json" and text.lstrip().startswith("["):
            data = json.loads(text)
            if not isinstance(data, list):
                raise InputError(f"{path}: expected a JSON list of objects")
            return data
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {n} is not JSON: {exc}") from None
        return records
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    raise InputError(f"{path}: not a manifest (expected {', '.join(sorted(MANIFEST_EXTENSIONS))})")


def _from_manifest(path: Path) -> list[ClipInput]:
    records = _manifest_records(path)
    out = []
    for n, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or not str(rec.get("path") or "").strip():
            raise InputError(f"{path}: record {n} has no 'path': {rec!r:.100}")
        p = Path(str(rec["path"]).strip())
        if not p.is_absolute():
            p = path.parent / p
        clip_id = str(rec.get("id") or "").strip() or p.stem
        out.append(ClipInput(clip_id, str(p.resolve())))
    return out


def list_inputs(videos: str | Path) -> list[ClipInput]:
    """All clips named by a folder or manifest, sorted by (id, path)."""
    videos = Path(videos)
    if videos.is_dir():
        clips = _from_folder(videos)
    elif videos.is_file():
        if videos.suffix.lower() not in MANIFEST_EXTENSIONS:
            raise InputError(f"{videos}: --videos must be a folder of videos or a manifest "
                             f"({', '.join(sorted(MANIFEST_EXTENSIONS))}) with a 'path' column")
        clips = _from_manifest(videos)
    else:
        raise InputError(f"{videos}: no such folder or manifest")
    return sorted(clips, key=lambda c: (c.id, c.path))
