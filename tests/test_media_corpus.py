"""Real clips as a player shows them: every file of the real-media corpus (tests/corpus/, see
its PROVENANCE.md) goes through preprocessing, and every row is compared with what ffmpeg's own
player path shows and plays (tests/player.py: a separate ffmpeg build, decoding each file from
its start, display matrix and EXIF orientation applied by ffmpeg itself):

- the stored frame is the frame shown at the row's ``frame_time`` (within JPEG noise, and
  measurably not the next frame), and, where frames are evenly spaced, frame ``frame_index``
  of a sequential decode -- the middle one, ``num_frames // 2``;
- the stored picture is the displayed one (phones' quarter turns, mirrors), at the displayed
  size, and the row says how it was turned;
- the audio window is the samples a player plays from ``audio_offset`` (correlation >= 0.99;
  in containers that stamp audio in milliseconds, the best match lies within 1 ms of it),
  centred on the frame's time unless shifted inward at an end of the track or tiled;
- ``frame_time`` is a time inside the clip;
- a file without audio or with a silent window is quarantined with that reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import DataConfig
from pipeline.data import load_quarantine, load_summary, read_shards, run_preprocess
from pipeline.data.codecs import decode_jpeg, decode_pcm16, resize_short_side
from pipeline.data.inputs import FramesAudio

try:
    from tests import player
except ImportError:  # pytest run without the repo root on sys.path
    import player

CORPUS = Path(__file__).resolve().parent / "corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
VIDEOS = MANIFEST["videos"]
ROWS = sorted(n for n, spec in VIDEOS.items() if spec["expect"] == "row")
JPEG_NOISE = 2.5  # mean |difference| of a stored frame and its source, 0-255 scale
CORRELATION = 0.99
SECONDS = 3.0  # data.audio_seconds
RATE = 16000  # data.sample_rate


def _id(name: str) -> str:
    return Path(name).stem


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The video corpus preprocessed (the local engine: the same decode as Ray's tasks)."""
    out = tmp_path_factory.mktemp("corpus") / "shards"
    summary = run_preprocess(CORPUS / "videos", out, data=DataConfig(), engine="local")
    rows = {r["id"]: r for r in read_shards(out).to_pylist()}
    return rows, {q["id"]: q for q in load_quarantine(out)}, summary


def _stored(row) -> np.ndarray:
    return decode_jpeg(row["frame_jpeg"]).astype(np.float64)


def _distance(stored: np.ndarray, shown: np.ndarray) -> float:
    """Mean |stored - shown| after the resize preprocessing applies (inf on another size)."""
    resized = resize_short_side(shown, stored.shape[0] if stored.shape[0] <= stored.shape[1]
                                else stored.shape[1])
    if resized.shape != stored.shape:
        return float("inf")
    return float(np.abs(stored - resized).mean())


def test_every_file_is_a_row_or_quarantined_with_its_reason(corpus):
    rows, quarantined, summary = corpus
    assert len({_id(name) for name in VIDEOS}) == len(VIDEOS)  # ids are file stems
    assert summary["inputs"] == len(VIDEOS) == summary["rows"] + summary["quarantined"]
    for name, spec in VIDEOS.items():
        if spec["expect"] == "row":
            assert _id(name) in rows, (name, quarantined.get(_id(name)))
        else:
            assert quarantined[_id(name)]["reason"].startswith(spec["expect"]), name


@pytest.mark.parametrize("name", ROWS)
def test_the_frame_is_the_one_a_player_shows(corpus, name):
    row, path = corpus[0][_id(name)], CORPUS / "videos" / name
    assert 0 <= row["frame_time"] < row["duration"], (row["frame_time"], row["duration"])
    stored = _stored(row)
    # A tolerance well under a frame: the frame that starts at frame_time, not the previous.
    shown = player.frame_at(path, row["frame_time"] - 1e-4)
    assert shown.shape[:2] == (row["source_height"], row["source_width"])
    match = _distance(stored, shown)
    after = _distance(stored, player.frame_at(path, row["frame_time"] + 1e-3))
    # the box jumps every frame: the next frame is measurably farther from the stored one
    assert match < JPEG_NOISE and after > max(1.3 * match, match + 0.5), (match, after)
    if VIDEOS[name]["regular_frames"]:
        assert row["frame_index"] == row["num_frames"] // 2
        assert _distance(stored, player.frame_number(path, row["frame_index"])) < JPEG_NOISE


@pytest.mark.parametrize("name", ROWS)
def test_the_picture_is_turned_as_the_display_matrix_says(corpus, name):
    row = corpus[0][_id(name)]
    rotation, hflip = VIDEOS[name]["display"]
    assert (row["display_rotation"], row["display_hflip"]) == (rotation, hflip)


@pytest.mark.parametrize("name", ROWS)
def test_the_audio_is_what_a_player_plays_at_the_offset(corpus, name):
    row, path = corpus[0][_id(name)], CORPUS / "videos" / name
    wave = decode_pcm16(row["audio"])
    assert len(wave) == int(SECONDS * RATE)
    if row["audio_tiled"]:
        track, _ = player.audio(path)
        assert len(track) < len(wave)
        reference = np.tile(track, int(np.ceil(len(wave) / len(track))))[:len(wave)]
    else:
        reference = player.audio_window(path, row["audio_offset"], SECONDS)
        centred = abs(row["audio_offset"] + SECONDS / 2 - row["frame_time"]) < 1e-3
        shifted_to_an_end = (row["audio_offset"] < 0.5 or
                             row["audio_offset"] + SECONDS > row["duration"] - 0.5)
        assert centred or shifted_to_an_end, (row["audio_offset"], row["frame_time"])
    if VIDEOS[name]["audio_exact"] or row["audio_tiled"]:
        assert player.correlation(wave, reference) >= CORRELATION
    else:  # millisecond timestamps: the window lies within 1 ms of the player's samples
        lag = _best_lag(path, row, wave)
        assert abs(lag) <= MS_STAMPED_LAG, lag


MS_STAMPED_LAG = RATE // 1000  # 1 ms, in samples


def _best_lag(path, row, wave) -> int:
    """The shift (samples) at which the player's samples match the window (corr >= 0.99)."""
    track, first = player.audio(path)
    k = int(round((player.start(path) + row["audio_offset"] - first) * RATE))
    scores = {lag: player.correlation(wave, track[k + lag:k + lag + len(wave)])
              for lag in range(-4 * MS_STAMPED_LAG, 4 * MS_STAMPED_LAG + 1)
              if k + lag >= 0}
    best = max(scores, key=scores.get)
    assert scores[best] >= CORRELATION, (best, scores[best])
    return best


def test_pairs_store_the_photo_as_a_viewer_shows_it_and_the_middle_of_the_track(tmp_path):
    pairs = CORPUS / "pairs"
    out = tmp_path / "shards"
    run_preprocess(FramesAudio(pairs / "frames", pairs / "audio"), out, data=DataConfig(),
                   engine="local")
    rows = {r["id"]: r for r in read_shards(out).to_pylist()}
    assert set(rows) == set(MANIFEST["pairs"]) and load_summary(out)["quarantined"] == 0
    for clip_id, spec in MANIFEST["pairs"].items():
        row = rows[clip_id]
        shown = player.image(pairs / "frames" / spec["frame"])
        assert (row["source_height"], row["source_width"]) == shown.shape[:2], clip_id
        assert _distance(_stored(row), shown) < JPEG_NOISE, clip_id
        turned = spec["exif_orientation"] not in (None, 1)
        assert (row["display_rotation"], row["display_hflip"]) != (0, False) or not turned
        audio = pairs / "audio" / spec["audio"]
        track, _ = player.audio(audio)
        middle = (len(track) - int(SECONDS * RATE)) // 2
        assert abs(row["audio_offset"] - middle / RATE) < 2 / RATE, clip_id
        reference = player.audio_window(audio, row["audio_offset"], SECONDS)
        assert player.correlation(decode_pcm16(row["audio"]), reference) >= CORRELATION


def test_dmt_frame_renders_the_displayed_frame(tmp_path, capsys):
    """``dmt frame`` shows a clip's frame as preprocessing stores it: a phone clip turned."""
    from PIL import Image

    from pipeline.cli import main

    path = CORPUS / "videos" / "phone_rot90.mp4"
    assert main(["frame", str(path), "--out", str(tmp_path / "f.png")]) == 0
    shown = np.asarray(Image.open(tmp_path / "f.png").convert("RGB"))
    assert shown.shape[:2] == (320, 180)  # coded 320x180, shown portrait
    assert "frame 52/105 (middle frame)" in capsys.readouterr().out
    reference = player.frame_number(path, 52)
    assert np.abs(shown.astype(float) - reference).mean() < 1.0
