"""Preprocessing: awkward real files, direct vs Ray Data rows, quarantine, missing ids, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import DataConfig
from pipeline.data import (
    SCHEMA_VERSION,
    ClipDecoder,
    DecodeOptions,
    SchemaVersionError,
    build_plan,
    decode_clip,
    load_quarantine,
    load_summary,
    make_row,
    ray_dataset,
    read_shards,
    row_to_example,
    run_preprocess,
    shard_files,
)
from pipeline.data import schema as schema_mod
from pipeline.data.decode import ClipError

try:
    from tests.media import frame_image, silence, sine, truncate, write_clip, write_text
except ImportError:  # pytest run without the repo root on sys.path
    from media import frame_image, silence, sine, truncate, write_clip, write_text

# id -> None (a correct row) or the start of the quarantine reason
EXPECTED = {
    "mono16k": None,
    "stereo44k": None,            # stereo 44.1 kHz AAC -> mono 16 kHz
    "aac48k": None,               # 48 kHz
    "portrait": None,             # 180x320 video
    "short_audio": None,          # 0.5 s of audio in a 2 s video -> tiled
    "mkv_clip": None,
    "webm_clip": None,
    "avi_clip": None,
    "mov_clip": None,
    "long6s": None,
    "bad_box": "bad annotation in annotations.json",
    "no_audio": "no audio stream",
    "silent": "silent audio",
    "cut_mp4": "unreadable container",    # mp4 cut in half: the moov atom is gone
    "cut_mkv": "truncated file",          # mkv cut in half: decodes, but only 0.9 of 2 s
    "empty": "empty file (0 bytes)",
    "text": "unreadable container",       # a text file named .mp4
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A folder of real, awkward media files + VGG-SS style annotations + id lists."""
    root = tmp_path_factory.mktemp("clips")
    v = root / "videos"
    write_clip(v / "mono16k.mp4", seconds=3.0, audio=sine(440, 3.0, 16000))
    write_clip(v / "stereo44k.mp4", seconds=3.0, sample_rate=44100,
               audio=sine(1000, 3.0, 44100, channels=2))
    write_clip(v / "aac48k.mp4", seconds=3.0, sample_rate=48000, audio=sine(440, 3.0, 48000))
    write_clip(v / "portrait.mp4", seconds=2.0, width=180, height=320,
               audio=sine(440, 2.0, 16000))
    write_clip(v / "short_audio.mp4", seconds=2.0, audio=sine(300, 0.5, 16000))
    write_clip(v / "mkv_clip.mkv", seconds=2.0, audio=sine(440, 2.0, 16000))
    write_clip(v / "webm_clip.webm", seconds=2.0, sample_rate=48000, audio=sine(440, 2.0, 48000))
    write_clip(v / "avi_clip.avi", seconds=2.0, sample_rate=44100, audio=sine(440, 2.0, 44100))
    write_clip(v / "mov_clip.mov", seconds=2.0, audio=sine(440, 2.0, 16000))
    write_clip(v / "long6s.mp4", seconds=6.0, audio=sine(500, 6.0, 16000))
    write_clip(v / "bad_box.mp4", seconds=2.0, audio=sine(440, 2.0, 16000))
    write_clip(v / "no_audio.mp4", seconds=2.0, audio=None)
    write_clip(v / "silent.mp4", seconds=2.0, audio=silence(2.0, 16000))
    truncate(write_clip(root / "full.mp4", seconds=3.0, audio=sine(440, 3.0, 16000)),
             v / "cut_mp4.mp4")
    truncate(write_clip(root / "full.mkv", seconds=2.0, audio=sine(440, 2.0, 16000)),
             v / "cut_mkv.mkv")
    (v / "empty.mp4").write_bytes(b"")
    write_text(v / "text.mp4")
    (v / "notes.txt").write_text("not a video extension: not an input")

    ann = [{"file": i, "class": "tone", "bbox": [[0.1, 0.2, 0.5, 0.6]]}
           for i in ("mono16k", "portrait", "mkv_clip", "long6s")]
    ann.append({"file": "stereo44k", "class": "beep", "bbox": [[0.2, -0.1, 1.3, 0.9],
                                                               [0.0, 0.0, 0.1, 0.1]]})
    ann.append({"file": "bad_box", "class": "tone", "bbox": [[0.1, float("nan"), 0.5, 0.6]]})
    ann.append({"file": "ghost_annotated", "class": "tone", "bbox": [[0.1, 0.1, 0.2, 0.2]]})
    (root / "annotations.json").write_text(json.dumps(ann))
    lists = root / "lists"
    lists.mkdir()
    (lists / "labeled.txt").write_text("mono16k\nstereo44k\nghost_labeled\n")
    (lists / "test.txt").write_text("portrait\nmkv_clip\nno_audio\nghost_test\n")
    (lists / "unlabeled.txt").write_text(
        "\n".join(i for i in EXPECTED if i not in ("mono16k", "stereo44k", "portrait",
                                                    "mkv_clip", "no_audio")) + "\n")
    return root


def _plan_args(clips: Path) -> dict:
    return {"annotations": clips / "annotations.json", "fmt": "synth", "lists": clips / "lists"}


SMALL = DataConfig(rows_per_file=4, decode_batch_size=2, decode_concurrency=2)


@pytest.fixture(scope="module")
def direct_rows(clips) -> dict[str, dict]:
    """Every planned clip decoded by the plain per-clip function, no Ray."""
    plan = build_plan(clips / "videos", **_plan_args(clips))
    opts = DecodeOptions.from_config(SMALL)
    return {it["id"]: make_row(it, opts) for it in plan.items}


@pytest.fixture(scope="module")
def ray_out(ray_session, clips, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ray") / "shards"
    summary = run_preprocess(clips / "videos", out, data=SMALL, engine="ray",
                             **_plan_args(clips))
    return out, summary


# ---------------------------------------------------------------- per clip, no Ray

def test_awkward_files_each_a_row_or_a_clear_reason(direct_rows):
    assert set(direct_rows) == set(EXPECTED)
    for clip_id, expected in EXPECTED.items():
        row = direct_rows[clip_id]
        if expected is None:
            assert row["error"] is None, (clip_id, row["error"])
            assert row["frame_jpeg"] and row["audio_samples"] == 48000
            assert len(row["audio"]) == 2 * 48000 and row["sample_rate"] == 16000
        else:
            assert row["error"] and row["error"].startswith(expected), (clip_id, row["error"])
            assert row["frame_jpeg"] is None and row["audio"] is None


def _peak_hz(wave: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wave))
    return float(np.argmax(spec) * sr / len(wave))


def test_decoded_content(direct_rows):
    rows = {k: row_to_example(r) for k, r in direct_rows.items() if r["error"] is None}
    st = direct_rows["stereo44k"]
    assert (st["source_sample_rate"], st["source_channels"]) == (44100, 2)
    assert abs(_peak_hz(rows["stereo44k"]["waveform"], 16000) - 1000) < 5
    assert direct_rows["aac48k"]["source_sample_rate"] == 48000
    assert abs(_peak_hz(rows["aac48k"]["waveform"], 16000) - 440) < 5
    for ex in rows.values():
        w = ex["waveform"]
        assert w.dtype == np.float32 and w.shape == (48000,) and np.abs(w).max() <= 1.0
    # portrait 180x320: short side 224, aspect kept
    p = direct_rows["portrait"]
    assert (p["frame_width"], p["frame_height"]) == (224, 398)
    assert rows["portrait"]["frame"].shape == (398, 224, 3)
    assert (p["source_width"], p["source_height"]) == (180, 320)
    # 0.5 s of audio under a 3 s window: tiled from the start, never silent in between
    sa = direct_rows["short_audio"]
    assert sa["audio_tiled"] and sa["audio_offset"] == 0.0
    chunks = rows["short_audio"]["waveform"].reshape(30, 1600)
    assert (np.sqrt((chunks ** 2).mean(axis=1)) > 0.1).all()
    assert abs(_peak_hz(rows["short_audio"]["waveform"], 16000) - 300) < 5
    # a 3 s clip fills the window without tiling; boxes clipped to [0, 1]
    assert not direct_rows["mono16k"]["audio_tiled"]
    assert direct_rows["stereo44k"]["boxes"] == [[0.2, 0.0, 1.0, 0.9], [0.0, 0.0, 0.1, 0.1]]
    assert direct_rows["stereo44k"]["category"] == "beep" and direct_rows["stereo44k"]["has_boxes"]
    assert direct_rows["aac48k"]["boxes"] == [] and not direct_rows["aac48k"]["has_boxes"]


def test_middle_frame_is_the_one_decoded(direct_rows):
    """The white square's position encodes the frame index (tests/media.py)."""
    row = direct_rows["long6s"]
    n = row["num_frames"]
    assert n == 60 and row["frame_index"] == n // 2 and row["frame_time"] == pytest.approx(3.0)
    assert row["duration"] == pytest.approx(6.0) and row["fps"] == pytest.approx(10.0)
    frame = row_to_example(row)["frame"].astype(float)
    scale = row["frame_width"] / 160
    bright = np.where(frame.mean(axis=2) > 200)
    expect = frame_image(n // 2, 160, 120, n).mean(axis=2) > 200
    ex_cols = np.where(expect)[1]
    assert abs(bright[1].mean() - ex_cols.mean() * scale) < 2.0


def test_audio_window_centred_and_shifted_at_edges(clips):
    path = clips / "videos" / "long6s.mp4"
    middle = decode_clip(path, "x", DecodeOptions())
    assert middle["audio_offset"] == pytest.approx(1.5)  # 3 s window centred on 3.0 s
    early = decode_clip(path, "x", DecodeOptions(frame_time=0.5))
    assert early["frame_index"] == 5 and early["audio_offset"] == 0.0  # shifted inward
    late = decode_clip(path, "x", DecodeOptions(frame_time=5.8))
    assert late["frame_index"] == 58
    assert late["audio_offset"] + 3.0 <= 6.1 and late["audio_offset"] > 2.9
    with pytest.raises(ClipError, match="past the end"):
        decode_clip(path, "x", DecodeOptions(frame_time=7.0))


def test_spectrogram_option(clips):
    row = decode_clip(clips / "videos" / "mono16k.mp4", "m", DecodeOptions(store_spectrogram=True))
    assert row["spec_bins"] == 257 and row["spec_frames"] == 1 + 48000 // 238
    spec = row_to_example({**row, "split": "", "boxes": []})["spectrogram"]
    assert spec.shape == (257, 202) and spec.dtype == np.float32
    assert np.isfinite(spec).all() and spec.min() >= np.log(1e-7) - 0.02  # float16 storage


def test_decoder_callable_never_raises(clips):
    items = [{"id": "a", "path": str(clips / "videos" / "empty.mp4"), "split": "", "ann": ""},
             {"id": "b", "path": str(clips / "nowhere.mp4"), "split": "test", "ann": "{}"}]
    table = ClipDecoder(DecodeOptions())(items)
    assert table.schema.equals(schema_mod.DECODED_SCHEMA)
    assert table["error"].to_pylist() == ["empty file (0 bytes)", "file not found"]


# ---------------------------------------------------------------- through Ray Data

def _sorted_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def test_ray_rows_equal_direct_rows(ray_out, direct_rows):
    out, summary = ray_out
    shards = read_shards(out)
    assert shards.schema.names == schema_mod.COLUMNS
    good = [{k: v for k, v in r.items() if k != "error"} for r in direct_rows.values()
            if r["error"] is None]
    good = pa.Table.from_pylist(good, schema=schema_mod.SCHEMA)  # float32 columns as stored
    assert _sorted_rows(shards) == _sorted_rows(good)  # every column, bytes included
    quarantine = {r["id"]: r["reason"] for r in load_quarantine(out)}
    assert quarantine == {k: r["error"] for k, r in direct_rows.items() if r["error"]}
    assert all(set(r) == {"id", "path", "split", "reason"} for r in load_quarantine(out))


def test_local_engine_writes_the_same_rows(ray_out, clips, tmp_path):
    out_ray, _ = ray_out
    summary = run_preprocess(clips / "videos", tmp_path / "s", data=SMALL, engine="local",
                             **_plan_args(clips))
    assert _sorted_rows(read_shards(tmp_path / "s")) == _sorted_rows(read_shards(out_ray))
    assert load_quarantine(tmp_path / "s") == load_quarantine(out_ray)
    assert summary["fingerprint"] == load_summary(out_ray)["fingerprint"]


def test_summary_accounts_for_every_input(ray_out):
    out, summary = ray_out
    assert summary == {**load_summary(out), "up_to_date": False}
    n_bad = sum(1 for v in EXPECTED.values() if v)
    assert summary["inputs"] == len(EXPECTED)  # notes.txt is not a video
    assert summary["rows"] == len(EXPECTED) - n_bad and summary["quarantined"] == n_bad
    assert summary["inputs"] == summary["rows"] + summary["quarantined"]
    assert summary["missing"] == ["ghost_annotated", "ghost_labeled", "ghost_test"]
    assert summary["missing_by_split"] == {"annotations_only": 1, "labeled": 1, "test": 1}
    assert summary["splits"]["labeled"] == {"inputs": 2, "rows": 2, "quarantined": 0}
    assert summary["splits"]["test"] == {"inputs": 3, "rows": 2, "quarantined": 1}
    assert summary["schema_version"] == SCHEMA_VERSION
    assert summary["quarantine_reasons"]["unreadable container"] == 2
    assert summary["annotations"]["clipped_coordinates"] == 2
    assert summary["annotations"]["bad_entries"] == 1
    assert sum(s["rows"] for s in summary["shards"]) == summary["rows"]
    # bounded shards: never more than rows_per_file rows
    assert all(s["rows"] <= SMALL.rows_per_file for s in summary["shards"])
    assert summary["data_config"]["rows_per_file"] == 4 and summary["engine"] == "ray"
    assert summary["timings"]["decode_write_s"] > 0
    for f in shard_files(out):
        assert pq.read_schema(f).metadata[b"dmt.schema_version"] == str(SCHEMA_VERSION).encode()


def test_rerun_is_up_to_date_and_changes_nothing(ray_out, clips):
    out, summary = ray_out
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run_preprocess(clips / "videos", out, data=SMALL, engine="ray", **_plan_args(clips))
    assert again["up_to_date"] and again["fingerprint"] == summary["fingerprint"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_reader_helpers(ray_out):
    out, _ = ray_out
    test_rows = read_shards(out, columns=["id", "has_boxes"], split="test")
    assert sorted(test_rows["id"].to_pylist()) == ["mkv_clip", "portrait"]
    assert test_rows.schema.names == ["id", "has_boxes"]
    row = read_shards(out, split="labeled").to_pylist()[0]
    ex = row_to_example(row)
    assert ex["frame"].dtype == np.uint8 and ex["frame"].shape == (224, 299, 3)
    assert ex["waveform"].dtype == np.float32 and ex["boxes"].dtype == np.float32
    assert ex["boxes"].shape[1] == 4 and ex["split"] == "labeled"
    # the same helper reads rows that come through Ray Data
    from ray.data.expressions import col

    ray_row = ray_dataset(out).filter(expr=col("id") == row["id"]).take(1)[0]
    ray_ex = row_to_example(ray_row)
    assert np.array_equal(ray_ex["frame"], ex["frame"])
    assert np.array_equal(ray_ex["waveform"], ex["waveform"])
    assert np.array_equal(ray_ex["boxes"], ex["boxes"]) and ray_ex["id"] == ex["id"]


def test_reader_refuses_other_schema_versions(tmp_path):
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "part-x.parquet")
    with pytest.raises(SchemaVersionError, match="not written by"):
        shard_files(tmp_path)
    meta = dict(schema_mod.METADATA)
    meta[schema_mod.VERSION_KEY] = b"999"
    table = schema_mod.SCHEMA.empty_table().replace_schema_metadata(meta)
    pq.write_table(table, tmp_path / "part-x.parquet")
    with pytest.raises(SchemaVersionError, match="re-run `dmt preprocess`"):
        shard_files(tmp_path)


# ---------------------------------------------------------------- interruption and resume

def _many_clips(root: Path, n: int) -> Path:
    """``n`` clips under distinct ids (a manifest reusing three files), two of them broken."""
    root.mkdir(parents=True, exist_ok=True)
    a = write_clip(root / "a.mp4", seconds=2.0, audio=sine(440, 2.0, 16000))
    b = write_clip(root / "b.mkv", seconds=2.0, width=96, height=160, audio=sine(880, 2, 16000))
    write_text(root / "bad.mp4")
    lines = ["id,path"] + [f"clip{i:03d},{[a, b][i % 2].name}" for i in range(n)]
    lines += ["broken1,bad.mp4", "broken2,bad.mp4"]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def test_interrupted_run_resumes_to_the_same_shards(ray_session, tmp_path):
    manifest = _many_clips(tmp_path / "media", 60)
    args = ["--videos", str(manifest), "--set", "data.rows_per_file=3",
            "--set", "data.decode_batch_size=1"]
    clean = tmp_path / "clean"
    assert run_preprocess(manifest, clean, data=DataConfig(rows_per_file=3, decode_batch_size=1),
                          engine="local")["rows"] == 60

    # 1. a real interruption: kill -9 a run while it is writing shards
    out = tmp_path / "out"
    partial = tmp_path / ".out.partial"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "preprocess", *args,
                             "--out", str(out), "--engine", "local"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(partial.glob("part-*.parquet"))) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = list(partial.glob("part-*.parquet"))
    assert 3 <= len(written) and not out.exists(), "the run should have been cut mid-way"

    # 2. plus the debris of a write cut in the middle of a file
    (partial / ".part-0000.abcd.inprogress").write_bytes(b"PAR1 half a file")
    (partial / "part-deadbeefdeadbeef.parquet").write_bytes(b"PAR1 not really parquet")
    (partial / "quarantine-deadbeefdeadbeef.jsonl").write_text('{"id": "x", "pa')

    # 3. rerun (through Ray this time): finishes the rest, nothing twice, nothing lost
    summary = run_preprocess(manifest, out, data=DataConfig(rows_per_file=3, decode_batch_size=1),
                             engine="ray")
    assert 0 < summary["resumed"]["already_done"] < 62
    assert summary["resumed"]["decoded_now"] == 62 - summary["resumed"]["already_done"]
    assert len(summary["resumed"]["repairs"]) == 3
    assert (summary["inputs"], summary["rows"], summary["quarantined"]) == (62, 60, 2)
    assert not partial.exists()
    assert _sorted_rows(read_shards(out)) == _sorted_rows(read_shards(clean))
    assert load_quarantine(out) == load_quarantine(clean)
    ids = read_shards(out, columns=["id"])["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 60


def test_changed_options_start_over_and_force_redoes(tmp_path):
    manifest = _many_clips(tmp_path / "media", 4)
    out = tmp_path / "out"
    first = run_preprocess(manifest, out, data=DataConfig(rows_per_file=2), engine="local")
    other = run_preprocess(manifest, out, data=DataConfig(rows_per_file=2, frame_short_side=64),
                           engine="local")
    assert other["fingerprint"] != first["fingerprint"] and not other["up_to_date"]
    sizes = read_shards(out, columns=["frame_height", "frame_width"]).to_pylist()
    assert {min(r["frame_height"], r["frame_width"]) for r in sizes} == {64}
    forced = run_preprocess(manifest, out, data=DataConfig(rows_per_file=2, frame_short_side=64),
                            engine="local", force=True)
    assert not forced["up_to_date"] and forced["rows"] == 4


def test_finished_but_not_swapped_in_is_completed(tmp_path):
    manifest = _many_clips(tmp_path / "media", 3)
    out = tmp_path / "out"
    first = run_preprocess(manifest, out, engine="local")
    os.rename(out, tmp_path / ".out.partial")  # as if cut between the final renames
    again = run_preprocess(manifest, out, engine="local")
    assert again["up_to_date"] and again["fingerprint"] == first["fingerprint"]
    assert not (tmp_path / ".out.partial").exists() and len(read_shards(out)) == 3


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    manifest = _many_clips(tmp_path / "media", 2)
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(Exception, match="not a shards folder"):
        run_preprocess(manifest, out, engine="local")
    assert (out / "thesis.tex").read_text() == "do not delete"


# ---------------------------------------------------------------- CLI

def test_cli_flags_override_the_config(clips, tmp_path, capsys):
    from pipeline.cli import main

    out = tmp_path / "cli_shards"
    rc = main(["preprocess", "--videos", str(clips / "videos"), "--out", str(out),
               "--annotations", str(clips / "annotations.json"), "--lists",
               str(clips / "lists"), "--format", "vggss", "--engine", "local",
               "--set", "data.rows_per_file=50", "--set", "data.frame_short_side=112", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == sum(1 for v in EXPECTED.values() if v is None)
    assert summary["config"]["data"]["format"] == "vggss"
    assert summary["config"]["data"]["shards"] == str(out)
    assert summary["decode_options"]["frame_short_side"] == 112 and len(summary["shards"]) == 1
    assert main(["preprocess", "--videos", str(clips / "videos"), "--out", str(out),
                 "--annotations", str(tmp_path / "nope.json"), "--engine", "local"]) == 2
    assert main(["preprocess", "--videos", str(clips / "videos"), "--out", str(out),
                 "--set", "data.rows_per_file=0"]) == 2


# ---------------------------------------------------------------- the synthetic benchmark

def test_synthetic_benchmark(ray_session, tmp_path, request):
    pytest.importorskip("pipeline.synth")
    synth = request.getfixturevalue("synth_small")
    summary = run_preprocess(synth / "videos", tmp_path / "s", annotations=synth /
                             "annotations.json", fmt="synth", lists=synth,
                             data=DataConfig(rows_per_file=8), engine="ray")
    assert (summary["inputs"], summary["rows"], summary["quarantined"]) == (24, 24, 0)
    assert summary["missing"] == []
    assert {k: v["rows"] for k, v in summary["splits"].items()} == {
        "labeled": 6, "test": 6, "unlabeled": 12}
    table = read_shards(tmp_path / "s")
    for row in table.to_pylist():
        assert row["frame_index"] == row["num_frames"] // 2
        assert row["has_boxes"] and row["box_format"] == "vggss"
