"""Real annotation formats: the public VGG-SS JSON and id lists, Flickr XML, manifests (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.data.formats import (
    AnnotationError,
    load_annotations,
    load_flickr_dir,
    load_vggss_json,
    parse_flickr_xml,
    parse_vggss_box,
)
from pipeline.data.id_lists import load_id_list, load_split_lists, split_of_list
from pipeline.data.inputs import InputError, list_inputs


def _reference_vggss_map(raw_boxes) -> np.ndarray:
    """EZ-VSL utils.py: clip to [0, 1], times 224, truncate, set the area (union)."""
    gt = np.zeros((224, 224))
    for b in raw_boxes:
        xmin, ymin, xmax, ymax = (np.clip(np.array(b), 0, 1) * 224).astype(int)
        gt[ymin:ymax, xmin:xmax] = 1
    return gt


def _map_from_stored(boxes) -> np.ndarray:
    gt = np.zeros((224, 224))
    for b in boxes:
        xmin, ymin, xmax, ymax = (np.array(b) * 224).astype(int)
        assert xmin <= xmax and ymin <= ymax
        gt[ymin:ymax, xmin:xmax] = 1
    return gt


# ---------------------------------------------------------------- VGG-SS (real file)

def test_real_vggss_json_parses_every_entry(metadata_dir):
    anns = load_vggss_json(metadata_dir / "vggss.json")
    raw = json.loads((metadata_dir / "vggss.json").read_text())
    assert len(anns.entries) == len(raw) == 5158
    assert not [i for i, a in anns.entries.items() if a.error]
    assert anns.stats["clipped_coordinates"] == 14
    assert anns.stats["zero_area_boxes"] == 12  # inverted only by clipping the -2.9e16 values
    assert anns.stats["bad_entries"] == 0 and anns.stats["duplicate_ids"] == 0
    n_boxes = 0
    for a in anns.entries.values():
        assert a.box_format == "vggss" and a.category and 1 <= len(a.boxes) <= 7
        for b in a.boxes:
            assert len(b) == 4 and all(0.0 <= v <= 1.0 for v in b)
            assert b[0] <= b[2] and b[1] <= b[3]
        n_boxes += len(a.boxes)
    assert n_boxes == sum(len(e["bbox"]) for e in raw)
    first = anns.entries["zpWuikVorYg_000032"]
    assert first.category == "elk bugling" and first.boxes == [[0.403125, 0.253125, 0.6, 0.75]]
    # the -2.9e16 sentinel is clipped; the inverted box keeps zero area
    assert anns.entries["Db6Hjt0x28k_000056"].boxes[0] == [0.384375, 0.859375, 0.696875,
                                                           0.859375]


def test_real_vggss_gt_maps_match_the_reference_code(metadata_dir):
    raw = json.loads((metadata_dir / "vggss.json").read_text())
    anns = load_vggss_json(metadata_dir / "vggss.json")
    repaired = [e for e in raw if any(not 0 <= v <= 1 for b in e["bbox"] for v in b)]
    assert len(repaired) == 12  # 14 coordinates in 12 entries
    sample = repaired + raw[:: 50]
    for e in sample:
        ours = _map_from_stored(anns.entries[e["file"]].boxes)
        assert np.array_equal(ours, _reference_vggss_map(e["bbox"])), e["file"]


@pytest.mark.parametrize("box, reason", [
    ([0.1, 0.2, float("nan"), 0.4], "non-finite"),
    ([0.6, 0.2, 0.3, 0.4], "xmin > xmax"),
    ([0.1, 0.5, 0.3, 0.4], "ymin > ymax"),
    ([0.1, 0.2, 0.3], "four numbers"),
    ([0.1, "a", 0.3, 0.4], "non-number"),
])
def test_bad_vggss_box_is_rejected(box, reason):
    with pytest.raises(ValueError, match=reason):
        parse_vggss_box(box)


def test_bad_box_marks_only_that_clip(tmp_path):
    path = tmp_path / "ann.json"
    # json.dumps writes NaN as the (non-standard) NaN literal that json.loads accepts
    path.write_text(json.dumps([
        {"file": "good", "class": "dog", "bbox": [[0.1, 0.1, 0.5, 0.5], [0.2, -0.5, 1.7, 0.9]]},
        {"file": "nan", "class": "dog", "bbox": [[0.1, float("nan"), 0.5, 0.5]]},
        {"file": "inverted", "class": "cat", "bbox": [[0.8, 0.1, 0.5, 0.5]]},
        {"file": "none", "class": "cat", "bbox": []},
    ]))
    anns = load_vggss_json(path)
    assert anns.entries["good"].error == ""
    assert anns.entries["good"].boxes[1] == [0.2, 0.0, 1.0, 0.9]
    assert "ann.json" in anns.entries["nan"].error and "non-finite" in anns.entries["nan"].error
    assert "xmin > xmax" in anns.entries["inverted"].error
    assert anns.entries["none"].error == "" and anns.entries["none"].boxes == []
    assert anns.stats["bad_entries"] == 2 and anns.stats["clipped_coordinates"] == 2


@pytest.mark.parametrize("text, match", [
    ("[{\"file\": \"a\", \"bbox\": [[0, 0, 1, 1]]", "not valid JSON"),
    ("{\"file\": \"a\"}", "expected a JSON list"),
    ("[{\"class\": \"dog\", \"bbox\": []}]", "entry 0 has no 'file'"),
])
def test_unusable_vggss_file_is_rejected_naming_it(tmp_path, text, match):
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(AnnotationError, match=match) as info:
        load_vggss_json(path)
    assert "broken.json" in str(info.value)


def test_missing_annotation_file_is_a_clear_error(tmp_path):
    with pytest.raises(AnnotationError, match="not found"):
        load_annotations("vggss", tmp_path / "nope.json")


# ---------------------------------------------------------------- id lists (real files)

def test_real_id_lists(metadata_dir):
    sup = load_id_list(metadata_dir / "flickr_sup_train.txt")
    assert len(sup) == len(set(sup)) == 4750
    flickr_test = load_id_list(metadata_dir / "flickr_test.csv")  # rows `id,int`, CRLF
    assert len(flickr_test) == 249 and flickr_test[0] == "10000130166"
    assert all(i.isdigit() for i in flickr_test)
    vggss_test = load_id_list(metadata_dir / "vggss_test.csv")
    assert len(vggss_test) == 5158
    assert set(vggss_test) == {e["file"] for e in
                               json.loads((metadata_dir / "vggss.json").read_text())}


def test_split_lists_from_the_real_metadata_folder(metadata_dir):
    lists = load_split_lists(metadata_dir)
    assert lists.files == {
        "flickr_sup_train.txt": {"split": "labeled", "ids": 4750},
        "flickr_test.csv": {"split": "test", "ids": 249},
        "vggss_test.csv": {"split": "test", "ids": 5158},
    }
    assert lists.split_of["10000130166"] == "test"
    assert lists.split_of["10000255784"] == "labeled"
    assert lists.split_of["zpWuikVorYg_000032"] == "test"


def test_split_names_and_priority(tmp_path):
    assert [split_of_list(n) for n in ("labeled.txt", "unlabeled.txt", "test.txt",
                                       "flickr_144k.txt", "vggss_10k.txt", "notes.txt",
                                       "vggss.json")] == [
        "labeled", "unlabeled", "test", "unlabeled", "unlabeled", None, None]
    (tmp_path / "labeled.txt").write_text("a\nb\n")
    (tmp_path / "unlabeled.txt").write_text("b\nc\nd\n")
    (tmp_path / "test.txt").write_text("d\ne\n\n")
    lists = load_split_lists(tmp_path)
    assert lists.split_of == {"a": "labeled", "b": "labeled", "c": "unlabeled", "d": "test",
                              "e": "test"}
    assert lists.conflicts == 2


# ---------------------------------------------------------------- Flickr XML

def _flickr_xml(boxes, extra: str = "") -> str:
    objs = "".join(
        f"<object><name>a{i}</name><bbox><score>1</score><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bbox></object>" for i, b in enumerate(boxes))
    return f"<annotation><filename>x.jpg</filename>{objs}{extra}</annotation>"


def test_flickr_xml_keeps_raw_256_grid_boxes(tmp_path):
    p = tmp_path / "123.xml"
    p.write_text(_flickr_xml([(10, 20, 128, 200), (0, 0, 256, 256), (30, 40, 100, 120)],
                             extra="<size><width>256</width></size>"))
    ann = parse_flickr_xml(p)
    assert ann.error == "" and ann.box_format == "flickr"
    assert ann.boxes_256 == [[10, 20, 128, 200], [0, 0, 256, 256], [30, 40, 100, 120]]
    assert ann.boxes[0] == [10 / 256, 20 / 256, 0.5, 200 / 256]
    assert ann.boxes[1] == [0.0, 0.0, 1.0, 1.0]
    # the field's consensus map: a pixel in one box is 0.5, in two or more 1
    gt = np.zeros((224, 224))
    for xmin, ymin, xmax, ymax in ann.boxes_256:
        box = [int(224 * v / 256) for v in (xmin, ymin, xmax, ymax)]
        gt[box[1]:box[3], box[0]:box[2]] += 1
    gt = np.minimum(gt / 2, 1)
    assert set(np.unique(gt)) == {0.5, 1.0}


@pytest.mark.parametrize("xml, reason", [
    ("<a><o><bbox><s>1</s><x>1</x><y>2</y><X>3</X></bbox></o></a>", "4 children, expected 5"),
    ("<a><o><bbox><s>1</s><x>1</x><y>2</y><X>3.5</X><Y>4</Y></bbox></o></a>", "not integers"),
    ("<a><o><bbox><s>1</s><x>50</x><y>2</y><X>3</X><Y>4</Y></bbox></o></a>", "xmin > xmax"),
    ("<a><o><bbox>", "unreadable Flickr XML"),
])
def test_malformed_flickr_xml_is_an_error_naming_the_file(tmp_path, xml, reason):
    p = tmp_path / "777.xml"
    p.write_text(xml)
    ann = parse_flickr_xml(p)
    assert reason in ann.error and "777.xml" in ann.error
    assert ann.boxes == []


def test_flickr_folder(tmp_path):
    (tmp_path / "1.xml").write_text(_flickr_xml([(0, 0, 128, 128)]))
    (tmp_path / "2.xml").write_text("not xml")
    (tmp_path / "readme.txt").write_text("ignored")
    anns = load_flickr_dir(tmp_path)
    assert set(anns.entries) == {"1", "2"} and anns.stats["bad_entries"] == 1
    assert load_annotations("flickr", tmp_path).entries["1"].boxes_256 == [[0, 0, 128, 128]]


# ---------------------------------------------------------------- inputs

def test_inputs_from_folder_and_manifests(tmp_path):
    vids = tmp_path / "v"
    (vids / "sub").mkdir(parents=True)
    for name in ("b.mp4", "sub/a.MKV", "c.webm", "notes.txt", ".hidden.mp4"):
        (vids / name).write_bytes(b"x")
    got = list_inputs(vids)
    assert [(c.id, Path(c.path).name) for c in got] == [("a", "a.MKV"), ("b", "b.mp4"),
                                                         ("c", "c.webm")]
    (tmp_path / "m.csv").write_text("path,id\nv/b.mp4,clip1\nv/c.webm,\n")
    got = list_inputs(tmp_path / "m.csv")
    assert [(c.id, c.path) for c in got] == [("c", str((vids / "c.webm").resolve())),
                                             ("clip1", str((vids / "b.mp4").resolve()))]
    (tmp_path / "m.jsonl").write_text('{"path": "v/b.mp4", "id": "x"}\n\n{"path": "v/b.mp4"}\n')
    assert [c.id for c in list_inputs(tmp_path / "m.jsonl")] == ["b", "x"]
    pq.write_table(pa.table({"path": [str(vids / "c.webm")]}), tmp_path / "m.parquet")
    assert [c.id for c in list_inputs(tmp_path / "m.parquet")] == ["c"]


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        list_inputs(tmp_path / "nope")
    (tmp_path / "m.csv").write_text("file\nx.mp4\n")
    with pytest.raises(InputError, match="no 'path'"):
        list_inputs(tmp_path / "m.csv")
    (tmp_path / "v.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="folder of videos or a manifest"):
        list_inputs(tmp_path / "v.mp4")
