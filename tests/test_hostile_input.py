"""Hostile input, with files the tests make: ids that are paths or hold control characters,
configs that name Python objects, huge or deeply nested annotation files, a 2-hour video, a
20,000 x 20,000 frame. Each is quarantined or refused with a clear reason; nothing is written
outside the output folder."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from pipeline import config as C
from pipeline.data import AnnotationError, DecodeOptions, load_vggss_json, run_preprocess
from pipeline.data.codecs import read_image
from pipeline.data.decode import decode_clip, decode_pair
from pipeline.data.media import ClipError
from pipeline.data.plan import id_problem
from pipeline.data.reader import load_quarantine, read_shards
from tests.media import sine, write_clip, write_wav

BAD_IDS = ["../../escaped", "a/b", "back\\slash", "nul\x00id", "bell\x07", "..", "x" * 300]


def test_id_rules():
    assert id_problem("-0WIU6I2ZEg_000030") == "" and id_problem("1001.jpg") == ""
    assert all(id_problem(i) for i in BAD_IDS)
    assert "separator" in id_problem("../../escaped") and "control" in id_problem("nul\x00id")


def test_manifest_ids_that_are_paths_are_quarantined_and_write_nothing_outside(tmp_path):
    clip = write_clip(tmp_path / "media" / "clip.mp4", seconds=3.0, audio=sine(440, 3.0, 16000))
    work = tmp_path / "work"
    manifest = work / "in" / "manifest.jsonl"
    manifest.parent.mkdir(parents=True)
    records = [{"id": i, "path": str(clip)} for i in [*BAD_IDS, "good"]]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = work / "out" / "shards"
    before = {p for p in tmp_path.rglob("*")}
    summary = run_preprocess(manifest, out, engine="local")
    assert summary["rows"] == 1 and summary["quarantined"] == len(BAD_IDS)
    assert read_shards(out, columns=["id"]).column("id").to_pylist() == ["good"]
    reasons = {r["id"]: r["reason"] for r in load_quarantine(out)}
    assert set(reasons) == set(BAD_IDS)  # every input is a row or a quarantined entry
    assert all(r.startswith("bad id ") for r in reasons.values())
    created = {p for p in tmp_path.rglob("*")} - before
    outside = [p for p in created if out.parent not in (p, *p.parents)]
    assert outside == [], outside


def test_configs_and_space_files_load_plain_data_only(tmp_path):
    from pipeline.tune import space as S

    marker = tmp_path / "pwned"
    evil = f"name: !!python/object/apply:os.system ['touch {marker}']\n"
    (tmp_path / "evil.yaml").write_text(evil)
    with pytest.raises(C.ConfigError, match="not valid YAML"):
        C.load(tmp_path / "evil.yaml", [])
    (tmp_path / "space.yaml").write_text(f"dmt.delta: !!python/object/apply:os.system "
                                         f"['touch {marker}']\n")
    with pytest.raises(C.ConfigError):
        S.load_space(str(tmp_path / "space.yaml"), C.load(None, []))
    with pytest.raises(C.ConfigError):
        C.load(None, [f"name=!!python/object/apply:os.system ['touch {marker}']"])
    assert not marker.exists()


def test_a_1_gb_or_deeply_nested_annotation_file_is_refused(tmp_path):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(1024**3)  # sparse: 1 GB on paper, nothing read
    with pytest.raises(AnnotationError, match=r"huge.json: annotation file of 1024 MB, over"):
        load_vggss_json(huge)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(AnnotationError, match="nested too deeply"):
        load_vggss_json(deep)


def test_a_two_hour_video_is_quarantined_before_decoding(tmp_path):
    long = write_clip(tmp_path / "long.mp4", seconds=7200, fps=1, width=32, height=32,
                      audio=None)
    with pytest.raises(ClipError, match=r"7200 s long, over data.max_duration_s=1800"):
        decode_clip(long, "long", DecodeOptions())


def test_a_frame_over_the_pixel_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    from PIL import Image

    small = tmp_path / "small.jpg"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(small)
    data = bytearray(small.read_bytes())
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    data[sof + 5:sof + 9] = struct.pack(">HH", 20000, 20000)
    giant = tmp_path / "giant.jpg"
    giant.write_bytes(bytes(data))
    with pytest.raises(ClipError, match=r"frame image of more than \d+ pixels, over "
                                        r"data.max_frame_pixels=40000000"):
        read_image(giant)  # Pillow's own bomb check is met first at this size
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(giant) as img:
        assert img.size == (20000, 20000)  # what a decoder would allocate 1.2 GB for
    with pytest.raises(ClipError, match=r"frame image of 20000x20000 pixels, over"):
        read_image(giant)  # and ours, from the header, without it
    wav = write_wav(tmp_path / "giant.wav", sine(440, 3.0, 16000), 16000)
    with pytest.raises(ClipError, match="over data.max_frame_pixels"):
        decode_pair(giant, wav, "giant", DecodeOptions())
    # a video's frame size comes from its container header, checked before decoding
    video = write_clip(tmp_path / "v.mp4", seconds=1.0, width=64, height=48,
                       audio=sine(440, 1.0, 16000))
    with pytest.raises(ClipError, match=r"frame of 64x48 pixels, over"):
        decode_clip(video, "v", DecodeOptions(max_frame_pixels=3000))
    assert decode_clip(video, "v", DecodeOptions())["id"] == "v"
