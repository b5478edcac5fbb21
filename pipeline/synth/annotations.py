"""The benchmark's annotation files, in the formats of the real benchmarks (docs/method.md §8.5).

- ``annotations.json``: VGG-SS layout for every clip, the sounding boxes at the middle frame.
- ``flickr_xml/<id>.xml``: Flickr-SoundNet layout for the test clips.
- ``labeled.txt`` / ``unlabeled.txt`` / ``test.txt``: the split, one id per line.
- ``meta.json``: the config, the encoder settings, the category table and every object of every
  clip.
"""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from pipeline.config import SynthConfig
from pipeline.synth.categories import categories_of
from pipeline.synth.scene import Scene, clip_id, middle_frame, num_frames, split_order
from pipeline.synth.video_io import ENCODER

SPLITS = ("labeled", "unlabeled", "test")
FLICKR_GRID = 256
# The field's Flickr ground truth adds 1 per annotator box, halves and clips at 1: one box alone
# would be a 0.5 map. Real Flickr-SoundNet clips have up to three annotators; here two identical
# "annotators" per box make the Flickr map equal the VGG-SS one (1 inside the box).
FLICKR_ANNOTATORS = 2


def clip_class(cfg: SynthConfig, scene: Scene) -> str:
    """The VGG-SS ``class`` of a clip: its sounding category (two sounders: ``a+b``); the
    category heard, for a clip heard from off-screen (which has no box)."""
    cats = categories_of(cfg)
    return "+".join(cats[k].name for k in scene.heard)


def vggss_entry(cfg: SynthConfig, scene: Scene) -> dict:
    return {"file": scene.id, "class": clip_class(cfg, scene),
            "bbox": [o.box(cfg.frame_size) for o in scene.sounders]}


def box_256(box: list[float]) -> list[int]:
    """A normalised box on the Flickr 256 x 256 integer grid (nearest grid line)."""
    return [min(max(round(v * FLICKR_GRID), 0), FLICKR_GRID) for v in box]


def flickr_xml(cfg: SynthConfig, scene: Scene) -> str:
    """``<annotation>`` with one ``<object>`` per sounder; each ``<bbox>`` has five children:
    the annotator (skipped by readers), then xmin, ymin, xmax, ymax on the 256 grid."""
    cats = categories_of(cfg)
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = f"{scene.id}.mp4"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(FLICKR_GRID)
    ET.SubElement(size, "height").text = str(FLICKR_GRID)
    for obj in scene.sounders:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = cats[obj.category].name
        for annotator in range(1, FLICKR_ANNOTATORS + 1):
            bbox = ET.SubElement(node, "bbox")
            ET.SubElement(bbox, "annotator").text = str(annotator)
            for tag, value in zip(("xmin", "ymin", "xmax", "ymax"),
                                  box_256(obj.box(cfg.frame_size)), strict=True):
                ET.SubElement(bbox, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def split_ids(cfg: SynthConfig) -> dict[str, list[str]]:
    """Seeded shuffle of all ids: the first ``labeled`` are labeled, the next ``test`` test.

    Each list is returned in id order so the files read naturally.
    """
    order = np.asarray(split_order(cfg))
    parts = {"labeled": order[:cfg.labeled], "test": order[cfg.labeled:cfg.labeled + cfg.test],
             "unlabeled": order[cfg.labeled + cfg.test:]}
    return {name: [clip_id(int(i)) for i in sorted(parts[name])] for name in SPLITS}


def meta(cfg: SynthConfig, scenes: list[Scene], splits: dict[str, list[str]]) -> dict:
    """Everything about the benchmark, including the silent objects' boxes, for analysis."""
    cats = categories_of(cfg)
    split_of = {cid: name for name, ids in splits.items() for cid in ids}
    size = cfg.frame_size
    return {
        "config": dataclasses.asdict(cfg),
        "encoder": ENCODER,
        "num_frames": num_frames(cfg),
        "middle_frame": middle_frame(cfg),
        "categories": [c.to_dict() for c in cats],
        "clips": [{
            "file": s.id,
            "split": split_of[s.id],
            "class": clip_class(cfg, s),
            "offscreen": s.offscreen is not None,
            "objects": [{"category": cats[o.category].name, "box": o.box(size),
                         "area": o.w * o.h / size ** 2, "sounding": o.sounding,
                         "velocity": [o.vx / size, o.vy / size],
                         **({"look": o.look.to_dict()} if o.look else {})} for o in s.objects],
        } for s in scenes],
    }


def write_annotations(out: Path, cfg: SynthConfig, scenes: list[Scene],
                      splits: dict[str, list[str]]) -> dict[str, Path]:
    """Write every annotation file into ``out``; return their paths by name."""
    paths = {"annotations": out / "annotations.json", "meta": out / "meta.json",
             "flickr_xml": out / "flickr_xml"}
    paths["annotations"].write_text(json.dumps([vggss_entry(cfg, s) for s in scenes], indent=1))
    paths["meta"].write_text(json.dumps(meta(cfg, scenes, splits), indent=1))
    paths["flickr_xml"].mkdir(parents=True, exist_ok=True)
    test = set(splits["test"])
    for s in scenes:
        if s.id in test:
            (paths["flickr_xml"] / f"{s.id}.xml").write_text(flickr_xml(cfg, s))
    for name, ids in splits.items():
        paths[name] = out / f"{name}.txt"
        paths[name].write_text("".join(f"{i}\n" for i in ids))
    return paths
