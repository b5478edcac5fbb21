"""The readers check what they decode instead of trusting a seek: each frame's own timestamp
decides which frame is kept, a seek that lands late (or a container that cannot seek) falls
back to decoding from the start and the row says so, and only what a row needs is decoded --
one key-frame interval of video and the window of audio, whatever the clip's length.
(tests/test_media_corpus.py compares rows of real-world files with ffmpeg's player path.)"""

from __future__ import annotations

import av
import numpy as np
import pytest

from pipeline.config import DataConfig
from pipeline.data import (
    DecodeOptions,
    audio_window,
    make_row,
    media,
    read_shards,
    run_preprocess,
    video_frame,
)
from pipeline.data.codecs import decode_jpeg, decode_pcm16, resize_short_side

try:
    from tests.media import sine, write_clip
except ImportError:  # pytest run without the repo root on sys.path
    from media import sine, write_clip


def _pyav_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _pyav_track(path, rate: int = 16000) -> np.ndarray:
    """The whole audio track decoded from its start, mono at ``rate``."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        out = [o.to_ndarray().reshape(-1) for f in container.decode(audio=0)
               for o in resampler.resample(f)]
        out += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    return np.concatenate(out)


def _row(path, clip_id="c"):
    return make_row({"id": clip_id, "path": str(path), "split": "", "ann": ""}, DecodeOptions())


def _assert_stored_frame_is(row, frames, index):
    """The stored JPEG is PyAV's frame ``index`` (resized as preprocessing does) within JPEG
    tolerance, and measurably not its neighbours (the test pattern moves every frame)."""
    stored = decode_jpeg(row["frame_jpeg"]).astype(float)

    def diff(k):
        return np.abs(stored - resize_short_side(frames[k], 224).astype(float))

    assert diff(index).mean() < 1.0 and diff(index).max() < 48
    assert min(diff(index - 1).max(), diff(index + 1).max()) > 150


def _assert_window_is(row, track):
    """The stored window is the full decode's samples at the row's offset."""
    start = int(round(row["audio_offset"] * 16000))
    wave = decode_pcm16(row["audio"])
    want = track[start:start + len(wave)]
    assert np.abs(wave - want).max() < 2e-3  # int16 rounding and the resampler restart


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_narrow_portrait_clips_store_the_middle_frame(tmp_path, ext):
    """96x160 (decord2 3.4 garbled such frames on some x86 CPUs): the row holds frame n // 2
    at its own size."""
    path = write_clip(tmp_path / f"narrow{ext}", seconds=2.0, width=96, height=160,
                      audio=sine(880, 2.0, 16000))
    row = _row(path)
    assert row["error"] is None, row["error"]
    assert (row["source_width"], row["source_height"]) == (96, 160)
    assert (row["frame_width"], row["frame_height"]) == (224, 373)
    frames = _pyav_frames(path)
    assert row["frame_index"] == len(frames) // 2
    _assert_stored_frame_is(row, frames, row["frame_index"])


@pytest.fixture()
def long_clip(tmp_path):
    """40 s at 10 fps, a key frame every 2 s, 44.1 kHz stereo noise (every window differs)."""
    noise = np.random.default_rng(3).uniform(-0.4, 0.4, (2, 40 * 44100)).astype(np.float32)
    return write_clip(tmp_path / "long.mp4", seconds=40.0, width=160, height=120, fps=10,
                      sample_rate=44100, audio=noise, gop=20, jump=True)


class _Counting:
    """Counts the frames each stream type yields through ``media.decode``."""

    def __init__(self):
        self.frames = {"video": 0, "audio": 0}
        self.real = media.decode

    def __call__(self, container, stream):
        for frame in self.real(container, stream):
            self.frames[stream.type] += 1
            yield frame


def test_only_one_key_frame_interval_and_the_window_are_decoded(long_clip, monkeypatch):
    counting = _Counting()
    for module in (video_frame, audio_window):
        monkeypatch.setattr(module, "decode", counting)
    row = _row(long_clip)
    assert row["error"] is None and row["frame_decoder"] == row["audio_decoder"] == "pyav"
    assert counting.frames["video"] <= 20 + 1  # from the key frame before the middle
    # the 3 s window and the lead before it, in AAC frames of 1024 samples (of 1,723 in all)
    assert counting.frames["audio"] <= (3.0 + 2 * audio_window.LEAD_SECONDS) * 44100 / 1024 + 4
    _assert_stored_frame_is(row, _pyav_frames(long_clip), 200)
    _assert_window_is(row, _pyav_track(long_clip))


def test_a_seek_that_lands_late_is_caught_and_the_clip_decoded_from_its_start(
        long_clip, monkeypatch):
    """A demuxer that lands after the asked-for time (as MPEG-TS and program streams can):
    the readers see it from the decoded timestamps and decode from the start; the row is the
    same as an exact seek's, and says how it was reached."""
    exact = _row(long_clip)
    real_seek = media.Media.seek

    def late(self, at, index=None):
        return real_seek(self, at + 5.0, index)

    monkeypatch.setattr(media.Media, "seek", late)
    row = _row(long_clip)
    assert row["frame_decoder"] == row["audio_decoder"] == "pyav-from-start"
    for column in ("frame_index", "frame_time", "audio_offset", "frame_jpeg"):
        assert row[column] == exact[column], column
    assert np.abs(decode_pcm16(row["audio"]) - decode_pcm16(exact["audio"])).max() < 2e-3


class _NoSeek:
    """A container whose every seek fails as an FLV without an index does (EPERM)."""

    def __init__(self, container):
        self._container = container

    def seek(self, *args, **kwargs):
        raise av.error.PermissionError(1, "Operation not permitted")

    def __getattr__(self, name):
        return getattr(self._container, name)


def _no_seek(monkeypatch):
    real_open = media.Media._open
    monkeypatch.setattr(media.Media, "_open", lambda self: _NoSeek(real_open(self)))


def test_a_container_that_cannot_seek_is_read_from_its_start(long_clip, monkeypatch):
    _no_seek(monkeypatch)
    row = _row(long_clip)
    assert row["error"] is None and row["frame_decoder"] == "pyav-from-start"
    assert row["audio_decoder"] == "pyav-from-start"
    _assert_stored_frame_is(row, _pyav_frames(long_clip), 200)
    _assert_window_is(row, _pyav_track(long_clip))


def test_summary_counts_the_rows_decoded_from_the_start(tmp_path, monkeypatch):
    videos = tmp_path / "videos"
    for i in range(3):
        write_clip(videos / f"c{i}.mp4", seconds=8.0, sample_rate=44100,
                   audio=sine(440 + 100 * i, 8.0, 44100), gop=10)
    _no_seek(monkeypatch)
    summary = run_preprocess(videos, tmp_path / "shards", engine="local",
                             data=DataConfig(rows_per_file=2))
    assert summary["rows"] == 3 and summary["quarantined"] == 0
    assert summary["decoded_from_start"] == {"frame": 3, "frame_ids": ["c0", "c1", "c2"],
                                             "audio": 3, "audio_ids": ["c0", "c1", "c2"]}
    table = read_shards(tmp_path / "shards", columns=["frame_decoder", "audio_decoder"])
    assert set(table["frame_decoder"].to_pylist()) == {"pyav-from-start"}


def test_a_file_no_decoder_reads_is_still_quarantined(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    row = _row(path)
    assert row["error"].startswith("unreadable container") and row["frame_jpeg"] is None


def test_frame_time_past_the_end_is_an_error_not_another_frame(long_clip):
    row = make_row({"id": "c", "path": str(long_clip), "split": "", "ann": ""},
                   DecodeOptions(frame_time=40.0))
    assert row["error"].startswith("frame_time 40 s is past the end of the video (40.000 s)")
    row = make_row({"id": "c", "path": str(long_clip), "split": "", "ann": ""},
                   DecodeOptions(frame_time=12.34))
    assert row["error"] is None and row["frame_index"] == 123
    _assert_stored_frame_is(row, _pyav_frames(long_clip), 123)


def test_a_stream_without_timestamps_is_placed_by_counting_frames(tmp_path):
    """A raw H.264 stream carries no timestamp at all (what an AVI's packed B-frames lack, in
    the extreme): frames are placed at the stream's rate from its first one, never at a time
    outside the clip (a missing timestamp once became a frame_time of -3.69e17 s)."""
    from pipeline.data.decode import displayed_frame

    path = write_clip(tmp_path / "raw.h264", seconds=3.0, fps=25, audio=None, jump=True)
    with av.open(str(path)) as container:
        assert all(p.pts is None and p.dts is None for p in container.demux(video=0))
    frames = _pyav_frames(path)
    frame = displayed_frame(path)
    assert (frame.index, frame.num_frames) == (len(frames) // 2, len(frames))
    assert frame.time == pytest.approx(frame.index / 25) and 0 <= frame.time < frame.duration
    assert np.array_equal(frame.image, frames[frame.index])
