"""The synthetic benchmark: real, decodable mp4 files whose annotations match their pixels."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import ConfigError, SynthConfig
from pipeline.synth import generate
from pipeline.synth.annotations import FLICKR_GRID
from pipeline.synth.audio import category_sound
from pipeline.synth.categories import CATEGORIES
from pipeline.synth.scene import middle_frame
from pipeline.synth.shapes import SHAPES, object_sprite, shape_mask

try:
    from tests import player
except ImportError:  # pytest run without the repo root on sys.path
    import player

# The conftest fixture's config: 24 clips of 2 s at the default 224 px / 25 fps / 16 kHz.
SMALL = SynthConfig(clips=24, labeled=6, test=6, seed=7, duration=2.0, workers=2)
COLOUR_TOL = 40  # max per-channel difference from a category colour after H.264 + yuv420p
EDGE_TOL = 3  # pixels an edge may move (chroma subsampling and blur at colour boundaries)
TIP_TOL = 4  # ... inward at the 1-pixel tips of a diamond or star, which blend away


def _ids(n: int) -> list[str]:
    return [f"synth_{i:06d}" for i in range(n)]


def _read_list(path: Path) -> list[str]:
    return path.read_text().split()


def _middle_frame(video: Path) -> np.ndarray:
    """Frame n // 2 as ffmpeg's player path shows it (not this project's reader)."""
    return player.frame_number(video, middle_frame(SMALL)).astype(np.int16)


# ------------------------------------------------------------------------------ files and lists

def test_layout_lists_and_annotations(synth_small: Path):
    assert sorted(p.stem for p in (synth_small / "videos").glob("*.mp4")) == _ids(24)
    assert not list((synth_small / "videos").glob("*.part"))
    lists = {name: _read_list(synth_small / f"{name}.txt")
             for name in ("labeled", "unlabeled", "test")}
    assert [len(v) for v in lists.values()] == [6, 12, 6]
    assert sorted(sum(lists.values(), [])) == _ids(24)  # a partition: no id twice, none missing

    entries = json.loads((synth_small / "annotations.json").read_text())
    assert [e["file"] for e in entries] == _ids(24)
    names = {c.name for c in CATEGORIES[:SMALL.categories]}
    for e in entries:
        assert e["class"] in names and len(e["bbox"]) == 1
        x0, y0, x1, y1 = e["bbox"][0]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert SMALL.area_min - 0.01 <= (x1 - x0) * (y1 - y0) <= SMALL.area_max + 0.01

    meta = json.loads((synth_small / "meta.json").read_text())
    assert meta["config"]["seed"] == 7 and meta["middle_frame"] == 25
    assert [c["name"] for c in meta["categories"]] == [c.name for c in CATEGORIES[:10]]
    for clip, e in zip(meta["clips"], entries, strict=True):
        cats = [o["category"] for o in clip["objects"]]
        assert len(set(cats)) == len(cats)  # all objects of a scene differ in category
        assert SMALL.distractors_min + 1 <= len(cats) <= SMALL.distractors_max + 1
        assert [o["box"] for o in clip["objects"] if o["sounding"]] == e["bbox"]


def test_clips_play_in_ffmpeg(synth_small: Path):
    """What a player makes of the clips: frame count, rate and size from a sequential decode,
    the audio track from ffmpeg's own build (tests/player.py)."""
    import av

    videos = sorted((synth_small / "videos").glob("*.mp4"))[:4]
    assert len(videos) == 4, videos
    for video in videos:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
            assert float(stream.average_rate) == pytest.approx(SMALL.fps)
        assert len(frames) == round(SMALL.duration * SMALL.fps)
        assert frames[0].shape == (SMALL.frame_size, SMALL.frame_size, 3)
        audio, _ = player.audio(video)
        assert abs(len(audio) - SMALL.duration * 16000) <= 1024  # one AAC frame at most
        assert np.sqrt(np.mean(audio ** 2)) > 0.03  # far from silent


def test_streams_are_h264_and_aac(synth_small: Path):
    import av

    with av.open(str(synth_small / "videos" / "synth_000000.mp4")) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == SMALL.sample_rate
        assert audio.codec_context.channels == 1


# ------------------------------------------------------------------------ boxes against pixels

def _colour_match(frame: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return np.abs(frame - np.array(colour)).max(axis=2) < COLOUR_TOL


def _extent(match: np.ndarray) -> list[int]:
    cols, rows = np.flatnonzero(match.any(axis=0)), np.flatnonzero(match.any(axis=1))
    return [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]


def test_boxes_match_the_drawn_objects(synth_small: Path):
    meta = json.loads((synth_small / "meta.json").read_text())
    by_name = {c.name: c for c in CATEGORIES}
    size = SMALL.frame_size
    assert [c["file"] for c in meta["clips"]] == _ids(SMALL.clips)
    sounding = 0
    for clip in meta["clips"]:
        frame = _middle_frame(synth_small / "videos" / f"{clip['file']}.mp4")
        for obj in clip["objects"]:
            cat = by_name[obj["category"]]
            x0, y0, x1, y1 = (int(v * size) for v in obj["box"])
            match = _colour_match(frame, cat.colour)
            grown = np.zeros_like(match)
            grown[max(y0 - EDGE_TOL, 0):y1 + EDGE_TOL, max(x0 - EDGE_TOL, 0):x1 + EDGE_TOL] = True
            # Every object: its colour lies inside its box (distractors may be partly hidden);
            # a few blended pixels where two other colours meet may match it elsewhere.
            assert match[grown].sum() >= 0.98 * match.sum(), (clip["file"], cat.name)
            if not obj["sounding"]:
                continue
            sounding += 1
            # The sounding object is fully visible: tight box, and filled as drawn.
            inward = (np.array(_extent(match & grown)) - [x0, y0, x1, y1]) * [1, 1, -1, -1]
            assert -1 <= inward.min() and inward.max() <= TIP_TOL, (clip["file"], cat.name, inward)
            mask, rgb = object_sprite(cat, x1 - x0, y1 - y0)
            primary = (mask & (rgb == cat.colour).all(axis=2)).sum()
            assert match[y0:y1, x0:x1].sum() >= 0.85 * primary, (clip["file"], cat.name)
    assert sounding == SMALL.clips  # one sounding object per clip, each checked


def test_flickr_xml_follows_the_reference_layout(synth_small: Path):
    entries = {e["file"]: e for e in json.loads((synth_small / "annotations.json").read_text())}
    test_ids = _read_list(synth_small / "test.txt")
    assert sorted(p.stem for p in (synth_small / "flickr_xml").glob("*.xml")) == test_ids
    for cid in test_ids:
        root = ET.parse(synth_small / "flickr_xml" / f"{cid}.xml").getroot()
        boxes = []
        for child in root:  # the reference reader: grandchildren named bbox, first child skipped
            for grandchild in child:
                if grandchild.tag == "bbox":
                    parts = list(grandchild)
                    assert len(parts) == 5
                    boxes.append([int(p.text) for p in parts[1:]])
        assert boxes, cid
        for box in boxes:  # every annotator's box is the JSON box on the 256 grid
            assert all(0 <= v <= FLICKR_GRID for v in box)
            expected = np.array(entries[cid]["bbox"][0]) * FLICKR_GRID
            assert np.abs(np.array(box) - expected).max() <= 0.5 + 1e-9


# ------------------------------------------------------------------------------------ reruns

def test_generate_replaces_an_earlier_run(tmp_path: Path):
    tiny = dict(labeled=1, test=1, duration=0.5, frame_size=64, fps=10, workers=1)
    generate(SynthConfig(clips=4, **tiny), tmp_path, progress=False)
    summary = generate(SynthConfig(clips=2, **tiny), tmp_path, progress=False)
    assert sorted(p.stem for p in (tmp_path / "videos").glob("*.mp4")) == _ids(2)
    assert summary["clips"] == 2 and summary["labeled"] == 1 and summary["test"] == 1


def test_generate_rejects_configs_it_cannot_lay_out(tmp_path: Path):
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="data.synth.categories"):
        generate(SynthConfig(categories=2, distractors_max=2), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="data.synth.labeled"):
        generate(SynthConfig(clips=4, labeled=3, test=3), tmp_path, progress=False)
    assert not (tmp_path / "videos").exists()


# ---------------------------------------------------------------------- shapes and sounds

@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_touch_every_edge_of_their_box(shape: str):
    for w, h in [(5, 7), (40, 33), (101, 150)]:
        m = shape_mask(shape, w, h)
        assert m[0].any() and m[-1].any() and m[:, 0].any() and m[:, -1].any()


def test_every_category_sounds_at_its_own_pitch():
    sr = 16000
    rng = np.random.default_rng(0)
    for cat in CATEGORIES:
        sound = category_sound(cat, sr, sr, rng)
        spectrum = np.abs(np.fft.rfft(sound))
        peak = np.fft.rfftfreq(sr, 1 / sr)[spectrum.argmax()]
        assert peak == pytest.approx(cat.f0, rel=0.05), cat.name
    assert len({c.f0 for c in CATEGORIES}) == len({(c.shape, c.texture) for c in CATEGORIES}) \
        == len({c.colour for c in CATEGORIES}) == len(CATEGORIES)


# ------------------------------------------------------------------------------------- CLI

def test_cli_writes_a_benchmark_and_renders_a_frame(tmp_path: Path, capsys):
    from PIL import Image

    from pipeline.cli import main

    out = tmp_path / "bench"
    rc = main(["synth", "--out", str(out), "--clips", "2", "--labeled", "1", "--test", "1",
               "--seed", "5", "--workers", "1", "--quiet", "--set", "data.synth.duration=0.5",
               "--set", "data.synth.frame_size=64"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "labeled 1, unlabeled 0, test 1" in printed
    assert json.loads((out / "meta.json").read_text())["config"]["seed"] == 5

    png = tmp_path / "frame.png"
    assert main(["frame", str(out / "videos" / "synth_000000.mp4"), "--out", str(png)]) == 0
    assert Image.open(png).size == (64, 64)
    assert "1 box(es)" in capsys.readouterr().out


def test_cli_rejects_a_bad_value_naming_the_key(tmp_path: Path, capsys):
    from pipeline.cli import main

    assert main(["synth", "--out", str(tmp_path), "--set", "data.synth.area_min=1.5"]) == 2
    assert "data.synth.area_min" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path), "--clips", "4", "--labeled", "3",
                 "--test", "3"]) == 2
    assert "data.synth.clips" in capsys.readouterr().err
    assert not (tmp_path / "videos").exists()


def test_a_data_folder_of_other_scenes_is_refused_before_its_shards_are_read(smoke_base):
    """A config whose data.synth differs from the scenes in its data.root (a benchmark whose
    knobs changed) must not train on the old scenes' shards."""
    from dataclasses import replace

    from pipeline import config as C
    from pipeline.prepare import check_synth_matches, prepare_dataset

    synth = C.data_paths(smoke_base.data).synth
    check_synth_matches(smoke_base.data.synth, synth)  # the folder's own settings pass
    check_synth_matches(replace(smoke_base.data.synth, workers=7), synth)  # speed only
    changed = C.from_dict(C.to_dict(smoke_base))
    C.set_key(changed, "data.synth.noise_level", 0.5)
    with pytest.raises(ConfigError, match=r"noise_level=0\.3 \(config: 0\.5\).*delete that"):
        prepare_dataset(changed, say=lambda *_: None)
    assert prepare_dataset(smoke_base, say=lambda *_: None)["rows"] == smoke_base.data.synth.clips
