"""Decode one clip into one row: plain functions, usable with or without Ray.

:func:`decode_clip` turns a video file into the media columns of :data:`schema.SCHEMA` or raises
:class:`ClipError` with a short, clear reason. :func:`make_row` adds the clip's annotation and
split and never raises: a failure becomes a row whose ``error`` column holds the reason.
:class:`ClipDecoder` applies :func:`make_row` to a batch (the ``map_batches`` callable).

What is taken from a clip (EZ-VSL conventions, see reference/DMT.md section 5):

- Frame (``video_frame.read_frame``): frame ``num_frames // 2`` or, when ``frame_time >= 0``, the
  last frame starting at or before ``frame_time`` seconds (past the end -> error, never another
  frame); decord, checked against the container's frame size, PyAV when decord's frame fails
  the check. Resized (bicubic) so the short side is ``frame_short_side``, aspect kept, stored as
  JPEG quality 90.
- Audio (``audio_window.read_audio_window``): mono at ``sample_rate`` (ffmpeg's resampler and
  downmix), a window of ``audio_seconds`` centred on the frame's timestamp; when the window
  would cross the start or end of the track it is shifted inward (so it is all real audio;
  ``audio_offset`` records where it starts); when the whole track is shorter than the window,
  the track is tiled from its start (``np.tile``, as EZ-VSL does; ``audio_tiled``). decord,
  checked for the window's sample count, PyAV otherwise. Clipped to [-1, 1], stored as int16
  PCM. A window with RMS below ``silence_rms`` is rejected as silent audio.
- Container facts come from a PyAV probe of the header (stream presence, frame size, source
  sample rate and channels), which also gives clearer reasons than decord for files that are
  not videos. ``frame_decoder`` / ``audio_decoder`` record which decoder produced the row.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data import schema
from pipeline.data.audio_window import read_audio_window
from pipeline.data.codecs import (
    MAX_FRAME_PIXELS,
    encode_jpeg,
    encode_pcm16,
    log_spectrogram,
    resize_short_side,
)
from pipeline.data.media import ClipError, Facts, probe, short_error
from pipeline.data.video_frame import read_frame

__all__ = ["TRUNCATED_FRACTION", "ClipDecoder", "ClipError", "DecodeOptions", "decode_clip",
           "decode_pair", "make_row", "media_columns"]

DEFAULT_SILENCE_RMS = 1e-4  # -80 dBFS; about 3 int16 steps
# A file whose video and audio both decode to less than this fraction of the duration the
# container declares (minus a quarter second of slack) is a cut-short download: rejected,
# because its "middle frame" would not be the clip's middle frame.
TRUNCATED_FRACTION = 0.8


@dataclass(frozen=True)
class DecodeOptions:
    """Everything that changes the decoded bytes (part of the run's fingerprint)."""

    frame_time: float = -1.0
    frame_short_side: int = 224
    jpeg_quality: int = schema.JPEG_QUALITY
    audio_seconds: float = 3.0
    sample_rate: int = 16000
    store_spectrogram: bool = False
    silence_rms: float = DEFAULT_SILENCE_RMS
    spec_n_fft: int = 512
    spec_hop: int = 238
    max_duration_s: float = 1800.0
    max_frame_pixels: int = MAX_FRAME_PIXELS

    @classmethod
    def from_config(cls, data: Any) -> DecodeOptions:
        """From a ``DataConfig`` (fields it lacks keep their defaults)."""
        kw = {}
        for name in ("frame_time", "frame_short_side", "audio_seconds", "sample_rate",
                     "store_spectrogram", "silence_rms", "jpeg_quality", "max_duration_s",
                     "max_frame_pixels"):
            if hasattr(data, name):
                kw[name] = getattr(data, name)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_limits(facts: Facts, opts: DecodeOptions) -> None:
    """Refuse, from the container header and before decoding, media whose decoding would not
    fit in bounded memory: the audio track is decoded whole (about 64 kB per second at 16 kHz),
    a frame is H x W x 3 bytes (1.2 GB at 20,000 x 20,000)."""
    if facts.declared_duration > opts.max_duration_s:
        raise ClipError(f"{facts.declared_duration:.0f} s long, over data.max_duration_s="
                        f"{opts.max_duration_s:g} (its audio track would be decoded whole); "
                        f"cut the clip or raise the limit")
    if facts.width * facts.height > opts.max_frame_pixels:
        raise ClipError(f"frame of {facts.width}x{facts.height} pixels, over "
                        f"data.max_frame_pixels={opts.max_frame_pixels}")


def decode_clip(path: str | Path, clip_id: str, opts: DecodeOptions) -> dict[str, Any]:
    """Decode one video into the media columns of a row; raises :class:`ClipError`."""
    path = str(path)
    p = Path(path)
    if not p.is_file():
        raise ClipError("file not found")
    if p.stat().st_size == 0:
        raise ClipError("empty file (0 bytes)")
    facts = probe(path)
    if not facts.has_video:
        raise ClipError("no video stream")
    check_limits(facts, opts)
    frame = read_frame(path, opts.frame_time, facts)
    if not facts.has_audio:
        raise ClipError("no audio stream")
    audio = read_audio_window(path, int(opts.sample_rate), frame.time, opts.audio_seconds)
    longest, declared = max(frame.duration, audio.track_seconds), facts.declared_duration
    if declared > 0 and longest < TRUNCATED_FRACTION * declared - 0.25:
        raise ClipError(f"truncated file: decodes {longest:.2f} s of the {declared:.2f} s the "
                        f"container declares")
    row = media_columns(frame.image, audio.wave, opts)
    row.update({
        "id": clip_id, "path": path, "frame_index": int(frame.index),
        "frame_time": frame.time, "audio_offset": float(audio.offset),
        "audio_tiled": audio.tiled, "duration": frame.duration, "fps": frame.fps,
        "num_frames": int(frame.num_frames),
        "source_sample_rate": facts.source_sample_rate,
        "source_channels": facts.source_channels,
        "frame_decoder": frame.decoder, "audio_decoder": audio.decoder, "audio_path": "",
    })
    return row


FRAME_TIME_UNKNOWN = -1.0  # the frames+audio layout: the frame's time in the video is unknown


def decode_pair(frame_path: str | Path, audio_path: str | Path, clip_id: str,
                opts: DecodeOptions, frame_index: int = 0, frame_count: int = 1
                ) -> dict[str, Any]:
    """The frames+audio layout: one frame image and one audio file into the media columns of a
    row (the same columns, checks and codecs as a video); raises :class:`ClipError`. The audio
    window is centred on the middle of the track (the frame's time is unknown)."""
    from pipeline.data.codecs import read_image

    image = read_image(frame_path, opts.max_frame_pixels)
    facts = probe(str(audio_path))
    if not facts.has_audio:
        raise ClipError(f"no audio stream in {Path(audio_path).name}")
    check_limits(facts, opts)
    audio = read_audio_window(str(audio_path), int(opts.sample_rate), None, opts.audio_seconds)
    row = media_columns(image, audio.wave, opts)
    row.update({
        "id": clip_id, "path": str(frame_path), "audio_path": str(audio_path),
        "frame_index": int(frame_index), "frame_time": FRAME_TIME_UNKNOWN,
        "audio_offset": float(audio.offset), "audio_tiled": audio.tiled,
        "duration": float(audio.track_seconds), "fps": 0.0, "num_frames": int(frame_count),
        "source_sample_rate": facts.source_sample_rate,
        "source_channels": facts.source_channels,
        "frame_decoder": "pillow", "audio_decoder": audio.decoder,
    })
    return row


def media_columns(image: np.ndarray, wave: np.ndarray, opts: DecodeOptions) -> dict[str, Any]:
    """The columns every layout derives the same way from a frame (H, W, 3) uint8 and an audio
    window (``audio_samples``,) float32: JPEG, PCM, RMS (silence check), spectrogram."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    if rms < opts.silence_rms:
        raise ClipError(f"silent audio (RMS {rms:.1e} < {opts.silence_rms:g})")
    stored = resize_short_side(image, opts.frame_short_side)
    spec, spec_bins, spec_frames = None, 0, 0
    if opts.store_spectrogram:
        s = log_spectrogram(wave, opts.spec_n_fft, opts.spec_hop)
        spec_bins, spec_frames = int(s.shape[0]), int(s.shape[1])
        spec = s.astype(schema.SPEC_DTYPE).tobytes()
    return {
        "frame_jpeg": encode_jpeg(stored, opts.jpeg_quality),
        "frame_height": int(stored.shape[0]), "frame_width": int(stored.shape[1]),
        "source_height": int(image.shape[0]), "source_width": int(image.shape[1]),
        "audio": encode_pcm16(wave), "sample_rate": int(opts.sample_rate),
        "audio_samples": int(len(wave)), "audio_rms": rms,
        "spectrogram": spec, "spec_bins": spec_bins, "spec_frames": spec_frames,
    }


# ---------------------------------------------------------------- rows

def _annotation_columns(ann: dict[str, Any]) -> dict[str, Any]:
    boxes = [list(map(float, b)) for b in ann.get("boxes") or []]
    return {
        "category": str(ann.get("category") or ""),
        "boxes": boxes,
        "boxes_256": [list(map(int, b)) for b in ann.get("boxes_256") or []],
        "box_format": str(ann.get("box_format") or ""),
        "has_boxes": bool(boxes),
    }


def make_row(item: dict[str, Any], opts: DecodeOptions) -> dict[str, Any]:
    """A planned clip (``id``, ``path``, ``split``, ``ann`` JSON, optional ``error``) -> a row of
    :data:`schema.DECODED_SCHEMA`. Never raises: failures are rows with ``error`` set."""
    ann = item.get("ann") or {}
    if isinstance(ann, str):
        ann = json.loads(ann) if ann else {}
    row: dict[str, Any] = {name: None for name in schema.DECODED_SCHEMA.names}
    row.update(id=str(item["id"]), path=str(item["path"]),
               audio_path=str(item.get("audio_path") or ""), split=str(item.get("split") or ""))
    row.update(_annotation_columns(ann))
    reason = item.get("error") or ann.get("error") or ""
    if not reason:
        try:
            if item.get("audio_path"):
                row.update(decode_pair(item["path"], item["audio_path"], row["id"], opts,
                                       int(item.get("frame_index") or 0),
                                       int(item.get("frame_count") or 1)))
            else:
                row.update(decode_clip(item["path"], row["id"], opts))
        except ClipError as exc:
            reason = exc.reason
        except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the run
            reason = f"unexpected {type(exc).__name__}: {short_error(exc)}"
    if reason:
        for name in schema.DECODED_SCHEMA.names:
            if name not in ("id", "path", "audio_path", "split", "category", "boxes",
                            "boxes_256", "box_format", "has_boxes"):
                row[name] = None
        row["error"] = reason
    return row


class ClipDecoder:
    """``map_batches`` callable: a batch of planned clips -> a pyarrow table of rows
    (:data:`schema.DECODED_SCHEMA`; failed clips have ``error`` set). Stateless, so Ray runs it
    as tasks; also callable directly on a list of dicts or a pyarrow table."""

    def __init__(self, opts: DecodeOptions):
        self.opts = opts

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        if isinstance(batch, pa.Table):
            items = batch.to_pylist()
        elif isinstance(batch, dict):  # numpy / dict-of-columns batch
            keys = list(batch)
            n = len(batch[keys[0]]) if keys else 0
            items = [{k: _py(batch[k][i]) for k in keys} for i in range(n)]
        else:
            items = list(batch)
        rows = [make_row(item, self.opts) for item in items]
        return pa.Table.from_pylist(rows, schema=schema.DECODED_SCHEMA)


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
