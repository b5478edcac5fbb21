"""Decoders are checked, not trusted: a frame of the wrong shape or an audio window of the wrong
length from decord is decoded again with PyAV, the row says which decoder made it, and
summary.json counts the fallbacks. No valid clip is lost to a decoder bug."""

from __future__ import annotations

import av
import numpy as np
import pytest

from pipeline.config import DataConfig
from pipeline.data import (
    DecodeOptions,
    audio_window,
    make_row,
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


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_narrow_portrait_clips_store_the_frame_pyav_decodes(tmp_path, ext):
    """96x160: decord2 3.4 returns a garbled (160, 96, 4) frame on some x86 CPUs; whatever this
    machine's decord does, the row exists and holds the right frame at the right size."""
    path = write_clip(tmp_path / f"narrow{ext}", seconds=2.0, width=96, height=160,
                      audio=sine(880, 2.0, 16000))
    row = _row(path)
    assert row["error"] is None, row["error"]
    assert (row["source_width"], row["source_height"]) == (96, 160)
    assert (row["frame_width"], row["frame_height"]) == (224, 373)
    assert row["frame_decoder"] in ("decord", "pyav")
    frames = _pyav_frames(path)
    assert row["frame_index"] == len(frames) // 2
    _assert_stored_frame_is(row, frames, row["frame_index"])


class _Decord:
    """decord with a fault injected: frames come back with a 4th channel (the shape decord2
    3.4 returns for narrow videos on some CPUs) and/or audio with two channels."""

    def __init__(self, real, bad_frames: bool, bad_audio: bool):
        self.real, self.bad_frames, self.bad_audio = real, bad_frames, bad_audio
        self.cpu = real.cpu

    def VideoReader(self, *args, **kwargs):  # noqa: N802 - decord's name
        vr = self.real.VideoReader(*args, **kwargs)
        if not self.bad_frames:
            return vr
        return _Wrapped(vr, lambda a: np.concatenate([a, a[..., :1]], axis=-1))

    def AudioReader(self, *args, **kwargs):  # noqa: N802
        ar = self.real.AudioReader(*args, **kwargs)
        if not self.bad_audio:
            return ar
        return _Wrapped(ar, lambda a: np.concatenate([a, a], axis=0))


class _Wrapped:
    def __init__(self, inner, fault):
        self.inner, self.fault = inner, fault

    def __len__(self):
        return len(self.inner)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __getitem__(self, key):
        out = self.inner[key]
        return type("Arr", (), {"asnumpy": lambda _s: self.fault(out.asnumpy())})()


def _inject(monkeypatch, bad_frames: bool, bad_audio: bool) -> None:
    real = video_frame.import_decord()
    fake = _Decord(real, bad_frames, bad_audio)
    for module in (video_frame, audio_window):
        monkeypatch.setattr(module, "import_decord", lambda: fake)


@pytest.fixture()
def clip(tmp_path):
    return write_clip(tmp_path / "wide.mp4", seconds=3.0, width=160, height=120,
                      sample_rate=44100, audio=sine(1000, 3.0, 44100, channels=2))


def test_a_frame_of_the_wrong_shape_is_decoded_again_with_pyav(clip, monkeypatch):
    _inject(monkeypatch, bad_frames=True, bad_audio=False)
    row = _row(clip)
    assert row["error"] is None and row["frame_decoder"] == "pyav"
    assert row["audio_decoder"] == "decord"
    _assert_stored_frame_is(row, _pyav_frames(clip), row["frame_index"])


def test_audio_of_the_wrong_shape_is_decoded_again_with_pyav(clip, monkeypatch):
    trusted = _row(clip)
    _inject(monkeypatch, bad_frames=False, bad_audio=True)
    row = _row(clip)
    assert row["error"] is None and row["audio_decoder"] == "pyav"
    assert row["frame_decoder"] == "decord" and row["frame_jpeg"] == trusted["frame_jpeg"]
    assert row["audio_samples"] == trusted["audio_samples"] == 48000
    assert row["audio_offset"] == trusted["audio_offset"]
    ours, theirs = decode_pcm16(row["audio"]), decode_pcm16(trusted["audio"])
    # two ffmpeg resampler set-ups, 44.1 kHz stereo -> 16 kHz mono: same tone, same level
    spec = [np.abs(np.fft.rfft(w)) for w in (ours, theirs)]
    assert np.argmax(spec[0]) == np.argmax(spec[1])
    assert abs(np.sqrt(np.mean(ours ** 2)) / np.sqrt(np.mean(theirs ** 2)) - 1) < 0.05


def test_summary_counts_the_fallbacks(tmp_path, monkeypatch):
    videos = tmp_path / "videos"
    for i in range(3):
        write_clip(videos / f"c{i}.mp4", seconds=2.0, audio=sine(440 + 100 * i, 2.0, 16000))
    _inject(monkeypatch, bad_frames=True, bad_audio=True)
    summary = run_preprocess(videos, tmp_path / "shards", engine="local",
                             data=DataConfig(rows_per_file=2))
    assert summary["rows"] == 3 and summary["quarantined"] == 0
    assert summary["decoder_fallbacks"] == {"frame": 3, "frame_ids": ["c0", "c1", "c2"],
                                            "audio": 3, "audio_ids": ["c0", "c1", "c2"]}
    table = read_shards(tmp_path / "shards", columns=["frame_decoder", "audio_decoder"])
    assert set(table["frame_decoder"].to_pylist()) == {"pyav"}


def test_a_file_no_decoder_reads_is_still_quarantined(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    row = _row(path)
    assert row["error"].startswith("unreadable container") and row["frame_jpeg"] is None
