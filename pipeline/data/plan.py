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
from pipeline.data.formats import load_annotations
from pipeline.data.id_lists import load_split_lists
from pipeline.data.inputs import FramesAudio, list_inputs
from pipeline.metrics import gt_map

# ---------------------------------------------------------------- plan

@dataclass
class Plan:
    items: list[dict[str, Any]]
    missing: list[str]
    missing_by_split: dict[str, int]
    annotations: dict[str, Any]
    lists: dict[str, Any]
    stats: list[tuple] = field(default_factory=list)  # (size, mtime_ns) of each item's files
    # ids of the labeled / test lists without a usable box, and what was done with them
    without_box: dict[str, dict[str, Any]] = field(default_factory=dict)


# what a labeled / test id without a usable box becomes (data.labeled_without_box, ...)
NO_BOX_CHOICES = {"labeled": ("unlabeled", "exclude", "quarantine"),
                  "test": ("exclude", "quarantine")}
NO_BOX_IDS_SHOWN = 50


def has_usable_box(ann: dict[str, Any]) -> bool:
    """Whether an annotation gives a ground-truth map with at least one pixel (the field's map
    rule, ``metrics.gt_map``): no boxes, or only zero-area ones, is no box."""
    if ann.get("box_format") == "flickr" and ann.get("boxes_256"):
        return bool(gt_map(ann["boxes_256"], "flickr").any())
    return bool(ann.get("boxes")) and bool(gt_map(ann["boxes"], "vggss").any())


def apply_box_policy(items: list[dict[str, Any]], labeled: str = "unlabeled",
                     test: str = "exclude") -> dict[str, dict[str, Any]]:
    """Labeled and test items without a usable box never stay in their split: a labeled one
    becomes ``unlabeled`` (its clip is still a valid unlabeled pair), ``exclude`` (a row in no
    split) or ``quarantine``; a test one ``exclude`` or ``quarantine``. Returns, per split, the
    count, the first ids and the treatment (``summary.json["without_box"]``)."""
    policy = {"labeled": labeled, "test": test}
    for split, choice in policy.items():
        if choice not in NO_BOX_CHOICES[split]:
            raise ValueError(f"data.{split}_without_box: {choice!r} is not one of "
                             f"{', '.join(NO_BOX_CHOICES[split])}")
    found: dict[str, list[str]] = {"labeled": [], "test": []}
    for item in items:
        split = item["split"]
        if split not in found or item["error"] or has_usable_box(json.loads(item["ann"])):
            continue
        found[split].append(item["id"])
        choice = policy[split]
        if choice == "quarantine":
            item["error"] = f"no usable box for this {split} id"
        else:
            item["split"] = "unlabeled" if choice == "unlabeled" else ""
    return {split: {"count": len(ids), "ids": ids[:NO_BOX_IDS_SHOWN],
                    "treated_as": policy[split]} for split, ids in found.items() if ids}


def _stats(clip) -> tuple:
    out = []
    for path in (clip.path, clip.audio_path):
        if not path:
            continue
        try:
            st = os.stat(path)
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((-1, -1))
    return tuple(out)


MAX_ID_CHARS = 255  # a file name's limit on common file systems


def id_problem(clip_id: str) -> str:
    """Why ``clip_id`` cannot be a clip id ("" when it can). Ids name files in the field's
    tools (``<id>.jpg``, ``<id>.wav``, heatmaps named by id), so one that is not a plain file
    name could write outside an output folder there: it is quarantined, never made safe
    silently (a renamed id would no longer match its annotation or list entry)."""
    if not clip_id:
        return "empty"
    if len(clip_id) > MAX_ID_CHARS:
        return f"{len(clip_id)} characters, more than {MAX_ID_CHARS}"
    if clip_id in (".", ".."):
        return "a relative path, not a name"
    if "/" in clip_id or "\\" in clip_id:
        return "contains a path separator"
    if any(ord(c) < 32 or ord(c) == 127 or 0x80 <= ord(c) < 0xA0 for c in clip_id):
        return "contains a NUL or control character"
    return ""


def build_plan(videos: str | Path | FramesAudio, *, annotations: str | Path | None = None,
               fmt: str = "synth", lists: str | Path | None = None,
               labeled_without_box: str = "unlabeled",
               test_without_box: str = "exclude") -> Plan:
    """Every input clip with its split and annotation (JSON), sorted by (id, path)."""
    clips = list_inputs(videos)
    anns = load_annotations(fmt, annotations)
    splits = load_split_lists(lists)
    items: list[dict[str, Any]] = []
    first_path: dict[str, str] = {}
    for clip in clips:
        ann = anns.entries.get(clip.id)
        item = {"id": clip.id, "path": clip.path, "audio_path": clip.audio_path,
                "frame_index": clip.frame_index, "frame_count": clip.frame_count,
                "split": splits.split_of.get(clip.id, ""),
                "ann": json.dumps(ann.to_dict() if ann else {}, sort_keys=True),
                "error": clip.error}
        if problem := id_problem(clip.id):
            item["error"] = f"bad id {clip.id!r}: {problem}"
        elif clip.id in first_path:
            item["error"] = f"duplicate id: {clip.id!r} is also {first_path[clip.id]}"
        else:
            first_path[clip.id] = clip.path
        items.append(item)
    without_box = apply_box_policy(items, labeled_without_box, test_without_box)
    named = set(splits.split_of) | set(anns.entries)
    missing = sorted(named - set(first_path))
    by_split = Counter(splits.split_of.get(m, "annotations_only") for m in missing)
    return Plan(
        items=items, missing=missing, missing_by_split=dict(sorted(by_split.items())),
        annotations={"format": fmt, "source": anns.source, "entries": len(anns.entries),
                     **anns.stats},
        lists={"source": str(lists) if lists else "", "files": splits.files,
               "split_conflicts": splits.conflicts},
        stats=[_stats(c) for c in clips], without_box=without_box)


def clip_key(clip_id: str, path: str) -> str:
    return f"{clip_id}\t{path}"


def fingerprint(plan: Plan, opts: DecodeOptions, rows_per_file: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"schema": schema.SCHEMA_VERSION, "opts": opts.to_dict(),
                         "rows_per_file": rows_per_file}, sort_keys=True).encode())
    for item, st in zip(plan.items, plan.stats, strict=True):
        h.update(json.dumps([item["id"], item["path"], item["audio_path"], item["split"],
                             item["ann"], item["error"], st]).encode())
        h.update(b"\n")
    return h.hexdigest()[:32]
