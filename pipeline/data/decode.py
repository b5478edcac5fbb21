"""Decode one clip into the media columns of its row: plain functions, with or without Ray.

:func:`decode_clip` turns a video file into the media columns of :data:`schema.SCHEMA` or raises
:class:`ClipError` with a short, clear reason; :mod:`pipeline.data.rows` adds the clip's
annotation and split to make a shard row.

What is taken from a clip (the field's convention, EZ-VSL's), all by PyAV and
on the timeline of :mod:`pipeline.data.media` (0 = the container's start, as a player shows):

- Frame (``video_frame.read_frame``): the frame shown at the middle of the video stream (for a
  constant-rate video of n frames, frame n // 2) or, when ``frame_time >= 0``, the frame shown
  at ``frame_time`` seconds (past the end -> error, never another frame); turned and mirrored
  as its display matrix says (``display_rotation``, ``display_hflip``). Resized (bicubic) so
  the short side is ``frame_short_side``, aspect kept, stored as JPEG quality 90.
- Audio (``audio_window.read_audio_window``): mono at ``sample_rate`` (ffmpeg's resampler and
  downmix), a window of ``audio_seconds`` centred on the frame's time; when the window would
  cross the start or end of the track it is shifted inward (so it is all real audio;
  ``audio_offset`` records where it starts); when the whole track is shorter than the window,
  the track is tiled from its start (``np.tile``, as EZ-VSL does; ``audio_tiled``). Clipped to
  [-1, 1], stored as int16 PCM. A window with RMS below ``silence_rms`` is rejected as silent.
- Only what the row needs is decoded (one key-frame interval of video, the window of audio),
  plus the packets of the file's last second, which say where each stream really ends (a file
  cut short is refused: ``TRUNCATED_FRACTION``).
- Container facts come from the header (stream presence, frame size, source sample rate and
  channels); the streams are the ones a player picks. ``frame_decoder`` / ``audio_decoder``
  say whether the seek was exact (``pyav``) or the stream was decoded from its start.
"""

from __future__ import annotations

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
    read_image,
    resize_short_side,
)
from pipeline.data.media import (
    PILLOW,
    ClipError,
    Facts,
    audio_stream,
    open_media,
    probe,
    video_stream,
)
from pipeline.data.spans import Span, measure_spans
from pipeline.data.video_frame import Frame, read_frame

__all__ = ["TRUNCATED_FRACTION", "ClipError", "DecodeOptions", "decode_clip", "decode_pair",
           "displayed_frame", "media_columns"]

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
    """Refuse, from the container header and before decoding, a frame that would not fit in
    bounded memory (H x W x 3 bytes: 1.2 GB at 20,000 x 20,000) and a file far longer than a
    dataset's clips (more likely a whole recording in the wrong folder than a clip)."""
    if facts.declared_duration > opts.max_duration_s:
        raise ClipError(f"{facts.declared_duration:.0f} s long, over data.max_duration_s="
                        f"{opts.max_duration_s:g}; cut the clip or raise the limit")
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
    with open_media(path) as media:
        facts = probe(media.container)
        if not facts.has_video:
            raise ClipError("no video stream")
        check_limits(facts, opts)
        # Stream indices, not stream objects: a reader may reopen the container.
        video = video_stream(media.container).index
        sound = audio_stream(media.container)
        sound = None if sound is None else sound.index
        indices = [i for i in (video, sound) if i is not None]
        spans = measure_spans(media, indices)
        check_complete(facts, [spans[i] for i in indices])
        frame = read_frame(media, video, spans[video], facts.origin, opts.frame_time)
        if sound is None:
            raise ClipError("no audio stream")
        audio = read_audio_window(media, sound, spans[sound], facts.origin,
                                  int(opts.sample_rate), frame.time, opts.audio_seconds)
    row = media_columns(frame.image, audio.wave, opts)
    row.update({
        "id": clip_id, "path": path, "frame_index": int(frame.index),
        "frame_time": frame.time, "audio_offset": float(audio.offset),
        "audio_tiled": audio.tiled, "duration": frame.duration, "fps": frame.fps,
        "num_frames": int(frame.num_frames),
        "display_rotation": frame.orientation.rotation,
        "display_hflip": frame.orientation.hflip,
        "source_sample_rate": facts.source_sample_rate,
        "source_channels": facts.source_channels,
        "frame_decoder": frame.decoder, "audio_decoder": audio.decoder, "audio_path": "",
    })
    return row


def displayed_frame(path: str | Path, frame_time: float = -1.0) -> Frame:
    """The frame :func:`decode_clip` would store (full size, displayed orientation), without
    the audio: for looking at a clip (``dmt frame``)."""
    with open_media(str(path)) as media:
        stream = video_stream(media.container)
        if stream is None:
            raise ClipError("no video stream")
        index, origin = stream.index, probe(media.container).origin
        span = measure_spans(media, [index])[index]
        return read_frame(media, index, span, origin, frame_time)


def check_complete(facts: Facts, spans: list[Span]) -> None:
    """Refuse a download cut short: its streams end well before the declared duration, so its
    "middle" frame would not be the clip's middle frame. (ffmpeg's Matroska reader declares
    the end time as the duration when timestamps start late: either reading counts.)"""
    declared = facts.declared_duration
    end = max((s.end for s in spans), default=0.0)
    longest = max(end - facts.origin, end)
    if declared > 0 and longest < TRUNCATED_FRACTION * declared - 0.25:
        raise ClipError(f"truncated file: decodes {end - facts.origin:.2f} s of the "
                        f"{declared:.2f} s the container declares")


FRAME_TIME_UNKNOWN = -1.0  # the frames+audio layout: the frame's time in the video is unknown


def decode_pair(frame_path: str | Path, audio_path: str | Path, clip_id: str,
                opts: DecodeOptions, frame_index: int = 0, frame_count: int = 1
                ) -> dict[str, Any]:
    """The frames+audio layout: one frame image and one audio file into the media columns of a
    row (the same columns, checks and codecs as a video); raises :class:`ClipError`. The image
    is turned as its EXIF orientation says; the audio window is centred on the middle of the
    track (the frame's time is unknown)."""
    image, orientation = read_image(frame_path, opts.max_frame_pixels)
    with open_media(str(audio_path)) as media:
        facts = probe(media.container)
        stream = audio_stream(media.container)
        if stream is None:
            raise ClipError(f"no audio stream in {Path(audio_path).name}")
        check_limits(facts, opts)
        index = stream.index
        span = measure_spans(media, [index])[index]
        audio = read_audio_window(media, index, span, facts.origin, int(opts.sample_rate),
                                  None, opts.audio_seconds)
    row = media_columns(image, audio.wave, opts)
    row.update({
        "id": clip_id, "path": str(frame_path), "audio_path": str(audio_path),
        "frame_index": int(frame_index), "frame_time": FRAME_TIME_UNKNOWN,
        "audio_offset": float(audio.offset), "audio_tiled": audio.tiled,
        "duration": float(audio.track_seconds), "fps": 0.0, "num_frames": int(frame_count),
        "display_rotation": orientation.rotation, "display_hflip": orientation.hflip,
        "source_sample_rate": facts.source_sample_rate,
        "source_channels": facts.source_channels,
        "frame_decoder": PILLOW, "audio_decoder": audio.decoder,
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
