"""The preprocessing plan (every input clip, its split and annotation) and its fingerprint.

The plan marks annotation errors and duplicate ids up front; its fingerprint (with the decode
options and the videos' size/mtime) decides whether a partial or finished output can be kept.
See :mod:`pipeline.data.preprocess`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.data import schema
from pipeline.data.decode import DecodeOptions
from pipeline.data.formats import load_annotations, load_split_lists
from pipeline.data.inputs import list_inputs

# ---------------------------------------------------------------- plan

@dataclass
class Plan:
    items: list[dict[str, Any]]
    missing: list[str]
    missing_by_split: dict[str, int]
    annotations: dict[str, Any]
    lists: dict[str, Any]
    stats: list[tuple[int, int]] = field(default_factory=list)  # (size, mtime_ns) per item


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


def clip_key(clip_id: str, path: str) -> str:
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
