"""Preprocessing: awkward real files, direct vs Ray Data rows, quarantine, missing ids, the CLI.

Interruption and resume: tests/test_preprocess_resume.py.
"""

from __future__ import annotations

import json
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
    read_shards,
    row_to_example,
    run_preprocess,
    shard_files,
)
from pipeline.data import schema as schema_mod
from pipeline.data.decode import ClipError

try:
    from tests.media import frame_image
    from tests.preprocess_helpers import EXPECTED, _sorted_rows, make_clips
except ImportError:  # pytest run without the repo root on sys.path
    from media import frame_image
    from preprocess_helpers import EXPECTED, _sorted_rows, make_clips


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """A folder of real, awkward media files + VGG-SS style annotations + id lists."""
    return make_clips(tmp_path_factory.mktemp("clips"))


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


def test_clip_groups_are_bounded_whole_rounds_covering_every_clip():
    from pipeline.data.engines import clip_groups

    assert clip_groups(0, 2, 1000) == []
    assert clip_groups(2500, 2, 1000) == [(0, 625), (625, 1250), (1250, 1875), (1875, 2500)]
    assert clip_groups(1000, 2, 1000) == [(0, 500), (500, 1000)]
    assert clip_groups(1000, 1, 1000) == [(0, 1000)]
    assert clip_groups(3, 8, 4) == [(0, 1), (1, 2), (2, 3)]  # never an empty group
    for n, tasks, rows in ((10, 2, 4), (1001, 2, 1000), (7, 3, 2), (10_000, 2, 1000)):
        groups = clip_groups(n, tasks, rows)
        assert groups[0][0] == 0 and groups[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(groups, groups[1:], strict=False))
        sizes = [b - a for a, b in groups]
        assert max(sizes) <= rows and max(sizes) - min(sizes) <= 1
        assert len(groups) % tasks == 0 or len(groups) == n


def test_a_streamed_shard_holds_what_write_shard_writes(direct_rows, tmp_path, monkeypatch):
    """write_group (decode batch by batch while writing) against write_shard (the whole group
    in memory): the same file names, rows and quarantine, in several row groups; a group with
    no good row writes no shard."""
    from pipeline.data import writer
    from pipeline.data.plan import clip_key

    rows = list(direct_rows.values())
    tables = [pa.Table.from_pylist(rows[i:i + 2], schema=schema_mod.DECODED_SCHEMA)
              for i in range(0, len(rows), 2)]
    keys = [clip_key(r["id"], r["path"]) for r in rows]
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 3)
    for folder in ("streamed", "whole", "bad"):
        (tmp_path / folder).mkdir()
    streamed = writer.write_group(iter(tables), keys, tmp_path / "streamed")
    whole = writer.write_shard(tables, tmp_path / "whole")
    assert streamed == whole and whole["quarantined"] > 0 and whole["rows"] > 3
    part = next(f for f in whole["files"] if f.startswith("part-"))
    a, b = (pq.ParquetFile(tmp_path / d / part) for d in ("streamed", "whole"))
    assert a.metadata.num_row_groups > 1 == b.metadata.num_row_groups  # streamed
    assert a.read().equals(b.read()) and a.schema_arrow.equals(b.schema_arrow)
    frag = next(f for f in whole["files"] if f.startswith("quarantine-"))
    assert (tmp_path / "streamed" / frag).read_text() == (tmp_path / "whole" / frag).read_text()

    bad = [r for r in rows if r["error"]]
    only_bad = writer.write_group([pa.Table.from_pylist(bad, schema=schema_mod.DECODED_SCHEMA)],
                                  [clip_key(r["id"], r["path"]) for r in bad], tmp_path / "bad")
    assert only_bad["rows"] == 0 and [f[:11] for f in only_bad["files"]] == ["quarantine-"]
    assert not list((tmp_path / "bad").glob("part-*"))


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
    # no_audio is in the test list without a box: out of the test split before decoding
    assert summary["splits"]["test"] == {"inputs": 2, "rows": 2, "quarantined": 0}
    assert summary["without_box"] == {"test": {"count": 1, "ids": ["no_audio"],
                                               "treated_as": "exclude"}}
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

    from pipeline.train.data import ray_dataset

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
