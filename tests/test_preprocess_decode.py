"""Preprocessing clip by clip, no Ray: each awkward real file a row or a clear reason, the decoded
frame, audio window and spectrogram, the decoder callable, and a shard streamed batch by batch.

Through Ray Data and the local engine: tests/test_preprocess.py. The awkward clips and their
rows decoded here (the session fixtures ``clips``, ``direct_rows``): tests/conftest.py.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.data import ClipDecoder, DecodeOptions, decode_clip, row_to_example
from pipeline.data import schema as schema_mod
from pipeline.data.decode import ClipError

try:
    from tests.media import frame_image
    from tests.preprocess_helpers import EXPECTED
except ImportError:  # pytest run without the repo root on sys.path
    from media import frame_image
    from preprocess_helpers import EXPECTED


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


# ---------------------------------------------------------------- writing a shard, no Ray

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
