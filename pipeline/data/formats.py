"""Readers for the real benchmarks' annotation formats (docs/method.md §8.5).

- VGG-SS: one JSON list ``[{"file": id, "class": str, "bbox": [[xmin, ymin, xmax, ymax], ...]}]``
  with coordinates normalised to [0, 1]. The public file has 14 out-of-range coordinates (one
  sentinel value about -2.9e16 repeated); they are clipped to [0, 1] as the public AVSL code does.
  12 of its boxes end up inverted by that clipping (e.g. ``xmax`` -2.9e16 -> 0 < ``xmin``); the
  reference code's ``gt[ymin:ymax, xmin:xmax] = 1`` gives them zero area, so they are kept as
  zero-area boxes (``xmax = xmin``) -- the clip stays, the ground-truth map is identical.
- Flickr-SoundNet: one XML file per id; each grandchild of the root named ``bbox`` has five
  children, the first skipped, the next four xmin, ymin, xmax, ymax integers on a 256 x 256
  grid. Kept raw in ``boxes_256`` (the field's 0.5-consensus map is built from them) and
  normalised (/256, clipped) in ``boxes``.
- synth: the VGG-SS JSON (``annotations.json``) plus ``labeled.txt`` / ``unlabeled.txt`` /
  ``test.txt`` lists.
- id lists: :mod:`pipeline.data.id_lists`.

A bad box in an otherwise readable file (NaN, not four numbers, ``xmin > xmax`` within range)
makes that clip's annotation an error: the clip is quarantined with the reason. A file that
cannot be read at all raises :class:`AnnotationError` naming the file.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS = ("synth", "vggss", "flickr")
# Annotation and list files are read whole: a bound keeps a wrong or hostile file (a 1 GB JSON)
# from taking the machine's memory. VGG-SS's JSON is about 1 MB, VGGSound-scale lists of
# 200,000 ids a few MB; a Flickr XML file holds one image's boxes.
MAX_ANNOTATION_BYTES = 256 * 1024**2
MAX_XML_BYTES = 1024**2


class AnnotationError(ValueError):
    """An annotation or id-list file that cannot be used at all; the message names the file."""


@dataclass
class Annotation:
    """The boxes (and class) of one clip, or why they are unusable (``error``)."""

    boxes: list[list[float]] = field(default_factory=list)
    boxes_256: list[list[int]] = field(default_factory=list)
    box_format: str = ""
    category: str = ""
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"boxes": self.boxes, "boxes_256": self.boxes_256, "box_format": self.box_format,
                "category": self.category, "error": self.error}


@dataclass
class AnnotationSet:
    """Annotations by clip id, where they came from, and what had to be repaired."""

    entries: dict[str, Annotation]
    source: str = ""
    format: str = ""
    stats: dict[str, int] = field(default_factory=dict)


def check_file_size(path: Path, limit: int, what: str) -> None:
    """AnnotationError when ``path`` is larger than ``limit`` bytes (FileNotFoundError passes)."""
    size = path.stat().st_size
    if size > limit:
        raise AnnotationError(f"{path}: {what} of {size / 1024**2:.0f} MB, over the "
                              f"{limit / 1024**2:.0f} MB an annotation or list file can be here")


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


def parse_vggss_box(raw: Any, stats: dict[str, int] | None = None) -> list[float]:
    """One VGG-SS box -> ``[xmin, ymin, xmax, ymax]`` clipped to [0, 1]; ValueError if bad."""
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        raise ValueError(f"box {raw!r} is not four numbers")
    vals = []
    for v in raw:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"box {raw!r} has a non-number {v!r}")
        if not math.isfinite(v):
            raise ValueError(f"box {raw!r} has a non-finite coordinate")
        vals.append(float(v))
    xmin, ymin, xmax, ymax = vals
    # inverted while in range: a genuinely malformed box
    for lo, hi, name in ((xmin, xmax, "x"), (ymin, ymax, "y")):
        if 0.0 <= lo <= 1.0 and 0.0 <= hi <= 1.0 and lo > hi:
            raise ValueError(f"box {raw!r} has {name}min > {name}max")
    out_of_range = sum(1 for v in vals if not 0.0 <= v <= 1.0)
    c = [_clip01(v) for v in vals]
    inverted = c[0] > c[2] or c[1] > c[3]
    if inverted:  # only possible through clipping: zero area, as in the reference gt map
        c[2] = max(c[0], c[2])
        c[3] = max(c[1], c[3])
    if stats is not None:
        stats["clipped_coordinates"] = stats.get("clipped_coordinates", 0) + out_of_range
        stats["zero_area_boxes"] = stats.get("zero_area_boxes", 0) + int(inverted)
    return c


def load_vggss_json(path: str | Path) -> AnnotationSet:
    """Read a VGG-SS style JSON (also the synth benchmark's ``annotations.json``)."""
    path = Path(path)
    try:
        check_file_size(path, MAX_ANNOTATION_BYTES, "annotation file")
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not valid JSON: {exc}") from None
    except RecursionError:
        raise AnnotationError(f"{path}: JSON nested too deeply to be an annotation file "
                              f"(VGG-SS's is a list of flat records)") from None
    if isinstance(data, dict) and isinstance(data.get("clips") or data.get("annotations"), list):
        data = data.get("clips") or data.get("annotations")
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of {{file, class, bbox}} entries, "
                              f"got {type(data).__name__}")
    stats: dict[str, int] = {"entries": len(data), "clipped_coordinates": 0,
                             "zero_area_boxes": 0, "bad_entries": 0, "duplicate_ids": 0}
    entries: dict[str, Annotation] = {}
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise AnnotationError(f"{path}: entry {i} is not an object: {entry!r:.80}")
        clip_id = entry.get("file", entry.get("id"))
        if not isinstance(clip_id, str) or not clip_id:
            raise AnnotationError(f"{path}: entry {i} has no 'file' id: {entry!r:.80}")
        category = entry.get("class", entry.get("category", ""))
        ann = Annotation(box_format="vggss", category=str(category or ""))
        raw_boxes = entry.get("bbox", entry.get("boxes", []))
        try:
            if not isinstance(raw_boxes, list):
                raise ValueError(f"'bbox' is not a list: {raw_boxes!r:.60}")
            ann.boxes = [parse_vggss_box(b, stats) for b in raw_boxes]
        except ValueError as exc:
            ann = Annotation(box_format="vggss", category=ann.category,
                             error=f"bad annotation in {path.name} (entry {i}): {exc}")
            stats["bad_entries"] += 1
        if clip_id in entries:
            stats["duplicate_ids"] += 1
            ann = Annotation(box_format="vggss", category=ann.category,
                             error=f"id listed twice in {path.name}; refusing to pick one")
        entries[clip_id] = ann
    return AnnotationSet(entries, source=str(path), format="vggss", stats=stats)


def parse_flickr_xml(path: str | Path) -> Annotation:
    """One Flickr-SoundNet XML file -> its boxes (error set when the file is malformed)."""
    path = Path(path)
    try:
        check_file_size(path, MAX_XML_BYTES, "Flickr XML file")
        root = ET.parse(path).getroot()
    except AnnotationError as exc:
        return Annotation(box_format="flickr", error=str(exc))
    except (ET.ParseError, OSError) as exc:
        return Annotation(box_format="flickr", error=f"unreadable Flickr XML {path.name}: {exc}")
    raw: list[list[int]] = []
    for child in root:
        for grandchild in child:
            if grandchild.tag != "bbox":
                continue
            parts = list(grandchild)
            if len(parts) != 5:
                return Annotation(box_format="flickr", error=(
                    f"malformed box in {path.name}: a bbox has {len(parts)} children, "
                    f"expected 5"))
            try:
                box = [int((p.text or "").strip()) for p in parts[1:5]]
            except ValueError:
                texts = [p.text for p in parts[1:5]]
                return Annotation(box_format="flickr", error=(
                    f"malformed box in {path.name}: coordinates {texts} are not integers"))
            if box[0] > box[2] or box[1] > box[3]:
                return Annotation(box_format="flickr", error=(
                    f"malformed box in {path.name}: {box} has xmin > xmax or ymin > ymax"))
            raw.append(box)
    boxes = [[_clip01(v / 256.0) for v in b] for b in raw]
    return Annotation(boxes=boxes, boxes_256=raw, box_format="flickr")


def load_flickr_dir(path: str | Path) -> AnnotationSet:
    """A folder of ``<id>.xml`` files (or one XML file)."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".xml")
    else:
        raise AnnotationError(f"{path}: Flickr annotation folder not found")
    entries = {p.stem: parse_flickr_xml(p) for p in files}
    bad = sum(1 for a in entries.values() if a.error)
    return AnnotationSet(entries, source=str(path), format="flickr",
                         stats={"entries": len(entries), "bad_entries": bad})


def load_annotations(fmt: str, path: str | Path | None) -> AnnotationSet:
    """Annotations of a format; ``path`` None -> none (every clip unannotated)."""
    if fmt not in FORMATS:
        raise AnnotationError(f"unknown annotation format {fmt!r}; one of {', '.join(FORMATS)}")
    if path is None:
        return AnnotationSet({}, source="", format=fmt)
    path = Path(path)
    if fmt == "flickr":
        return load_flickr_dir(path)
    if path.is_dir():
        candidates = [path / "annotations.json", path / "vggss.json"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise AnnotationError(f"{path}: no annotations.json or vggss.json in this folder")
        path = found
    result = load_vggss_json(path)
    result.format = fmt
    return result
