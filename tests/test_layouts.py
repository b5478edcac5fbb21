"""The field's pre-extracted layout (frames/ + audio/) gives the same rows as the videos it came
from; ids of the labeled or test lists without a box never become rows of those splits; and
annotations come only from what the user names or from the input folder's own files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.config import DataConfig, SynthConfig
from pipeline.data import load_quarantine, read_shards, row_to_example, run_preprocess
from pipeline.data.inputs import FramesAudio
from pipeline.data.reader import load_summary

try:
    from tests.media import export_pair, silence, write_text, write_wav
except ImportError:  # pytest run without the repo root on sys.path
    from media import export_pair, silence, write_text, write_wav


@pytest.fixture(scope="module")
def synth3(tmp_path_factory) -> Path:
    """Ten 3.2 s synthetic clips (the window is centred, not tiled)."""
    from pipeline.synth import generate

    out = tmp_path_factory.mktemp("synth3")
    generate(SynthConfig(clips=10, labeled=3, test=3, seed=5, workers=1), out, progress=False)
    return out


@pytest.fixture(scope="module")
def pairs(synth3, tmp_path_factory) -> Path:
    """The same clips as frames + 44.1 kHz stereo WAVs (two as per-id frame folders), plus an
    id without a WAV, one without a frame, an unreadable JPEG, an unreadable WAV, a silent WAV."""
    root = tmp_path_factory.mktemp("pairs")
    frames, audio = root / "frames", root / "audio"
    for k, video in enumerate(sorted((synth3 / "videos").glob("*.mp4"))):
        export_pair(video, frames, audio, folder=k < 2)
    write_text(frames / "no_wav.jpg", "frame without audio")  # also unreadable: never decoded
    write_wav(audio / "no_frame.wav", np.full((1, 16000), 0.1, np.float32), 16000)
    write_text(frames / "bad_jpeg.jpg", "not a jpeg")
    write_wav(audio / "bad_jpeg.wav", np.full((1, 48000), 0.1, np.float32), 16000)
    good = sorted(frames.glob("synth_*.jpg"))[0]
    shutil.copy(good, frames / "bad_wav.jpg")
    write_text(audio / "bad_wav.wav", "RIFF but not really")
    shutil.copy(good, frames / "silent.jpg")
    write_wav(audio / "silent.wav", silence(3.0, 44100, channels=2), 44100)
    return root


def _rows(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in read_shards(out).to_pylist()}


def test_frames_and_audio_give_the_rows_of_their_videos(synth3, pairs, tmp_path):
    kw = {"annotations": synth3 / "annotations.json", "fmt": "synth", "lists": synth3,
          "data": DataConfig(rows_per_file=4), "engine": "local"}
    s_vid = run_preprocess(synth3 / "videos", tmp_path / "v", **kw)
    s_pair = run_preprocess(FramesAudio(pairs / "frames", pairs / "audio"), tmp_path / "p", **kw)
    videos, pair_rows = _rows(tmp_path / "v"), _rows(tmp_path / "p")
    assert s_pair["inputs"] == s_pair["rows"] + s_pair["quarantined"] == 15
    assert set(videos) <= set(pair_rows) and s_vid["rows"] == 10
    for clip_id, v in videos.items():
        p = pair_rows[clip_id]
        assert (p["split"], p["boxes"], p["category"]) == (v["split"], v["boxes"], v["category"])
        assert (p["source_sample_rate"], p["source_channels"]) == (44100, 2)
        assert p["frame_decoder"] == "pillow" and p["audio_path"].endswith(f"{clip_id}.wav")
        assert p["frame_time"] == -1.0 and p["audio_samples"] == v["audio_samples"] == 48000
        fv, fp = row_to_example(v)["frame"], row_to_example(p)["frame"]
        # JPEG q95 (the export) then q90 (the shards) of a noisy texture: within a few levels
        assert fv.shape == fp.shape and np.abs(fv.astype(float) - fp).mean() < 6.0
        wv, wp = row_to_example(v)["waveform"], row_to_example(p)["waveform"]
        # resampled twice (16 -> 44.1 -> 16 kHz) and centred on the track's middle instead of
        # the middle frame's time: the same sound within a few ms
        lag = max(range(-400, 401, 4), key=lambda d: float(np.dot(np.roll(wp, d), wv)))
        corr = np.corrcoef(np.roll(wp, lag), wv)[0, 1]
        assert corr > 0.95 and abs(lag) <= 400, (clip_id, corr, lag)
    a, b = sorted(videos)[:2]  # and another clip's frame is far off: the check can tell
    assert np.abs(row_to_example(videos[a])["frame"].astype(float)
                  - row_to_example(pair_rows[b])["frame"]).mean() > 15
    folder_ids = sorted(pair_rows)[:2]
    assert all(pair_rows[i]["num_frames"] == 5 and pair_rows[i]["frame_index"] == 2
               for i in folder_ids if i.startswith("synth_"))
    reasons = {r["id"]: r["reason"] for r in load_quarantine(tmp_path / "p")}
    assert reasons["no_wav"].startswith("no audio file (audio/no_wav.wav)")
    assert reasons["no_frame"].startswith("no frame")
    assert reasons["bad_jpeg"].startswith("unreadable frame image")
    assert reasons["bad_wav"].startswith("unreadable container")
    assert reasons["silent"].startswith("silent audio")


def test_the_cli_takes_the_layout(pairs, synth3, tmp_path, capsys):
    out = tmp_path / "shards"
    assert main(["preprocess", "--frames", str(pairs / "frames"), "--audio",
                 str(pairs / "audio"), "--annotations", str(synth3 / "annotations.json"),
                 "--lists", str(synth3), "--out", str(out), "--engine", "local",
                 "--no-log"]) == 0
    err = capsys.readouterr().err
    assert "annotations" in err and "(given)" in err
    assert load_summary(out)["rows"] == 10
    assert main(["preprocess", "--frames", str(pairs / "frames"), "--out", str(out)]) == 2
    assert "go together" in capsys.readouterr().err


def test_listed_ids_without_a_box_leave_their_split(synth3, tmp_path):
    ann = json.loads((synth3 / "annotations.json").read_text())
    labeled = (synth3 / "labeled.txt").read_text().split()
    test = (synth3 / "test.txt").read_text().split()
    drop = {labeled[0], test[0]}
    (tmp_path / "ann.json").write_text(json.dumps([a for a in ann if a["file"] not in drop]))
    kw = {"annotations": tmp_path / "ann.json", "fmt": "synth", "lists": synth3,
          "engine": "local"}
    summary = run_preprocess(synth3 / "videos", tmp_path / "a", **kw)
    rows = _rows(tmp_path / "a")
    assert rows[labeled[0]]["split"] == "unlabeled" and rows[test[0]]["split"] == ""
    assert all(rows[i]["has_boxes"] for i in rows if rows[i]["split"] in ("labeled", "test"))
    assert summary["without_box"] == {
        "labeled": {"count": 1, "ids": [labeled[0]], "treated_as": "unlabeled"},
        "test": {"count": 1, "ids": [test[0]], "treated_as": "exclude"}}
    strict = DataConfig(labeled_without_box="quarantine", test_without_box="quarantine")
    run_preprocess(synth3 / "videos", tmp_path / "q", data=strict, **kw)
    reasons = {r["id"]: r["reason"] for r in load_quarantine(tmp_path / "q")}
    assert reasons == {labeled[0]: "no usable box for this labeled id",
                       test[0]: "no usable box for this test id"}


def test_another_datasets_boxes_are_never_attached(tmp_path, monkeypatch, capsys):
    """The demo's data in the working folder, another synthetic set with the same ids: the
    other set's rows get its own boxes, or none; never the demo's."""
    from pipeline.synth import generate

    monkeypatch.chdir(tmp_path)
    demo, other = tmp_path / "data" / "demo" / "synth", tmp_path / "other"
    generate(SynthConfig(clips=6, labeled=2, test=2, seed=0, workers=1, duration=1.0), demo,
             progress=False)
    generate(SynthConfig(clips=6, labeled=2, test=2, seed=99, workers=1, duration=1.0), other,
             progress=False)
    assert main(["preprocess", "--videos", "other/videos", "--out", "o1",
                 "--engine", "local", "--no-log"]) == 0
    assert "the input's own dmt synth folder" in capsys.readouterr().err
    own = {a["file"]: a["bbox"] for a in json.loads((other / "annotations.json").read_text())}
    demo_boxes = {a["file"]: a["bbox"]
                  for a in json.loads((demo / "annotations.json").read_text())}
    rows = _rows(tmp_path / "o1")
    assert all(r["boxes"] == own[i] and r["boxes"] != demo_boxes[i] for i, r in rows.items())
    assert load_summary(tmp_path / "o1")["annotations"]["source"] == str(
        (other / "annotations.json").resolve())
    shutil.copytree(other / "videos", tmp_path / "plain")  # videos alone: no annotations
    assert main(["preprocess", "--videos", "plain", "--out", "o2", "--engine", "local",
                 "--no-log"]) == 0
    assert "annotations - (none given)" in capsys.readouterr().err
    assert all(not r["boxes"] and r["split"] == "" for r in _rows(tmp_path / "o2").values())
