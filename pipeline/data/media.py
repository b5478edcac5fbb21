"""What every media reader shares: the clip error, opening a container, its header facts and
the timeline that a row's times are measured on.

One decoder reads every video and audio file: PyAV (ffmpeg's libraries). A row needs one frame
and one audio window, so the readers (``video_frame.read_frame``,
``audio_window.read_audio_window``) seek to the key frame before what they need and decode
forward from there, checking each decoded frame's own timestamp; the cost does not grow with
the clip's length (docs/decoding.md). A seek that lands after the asked-for time (some
demuxers estimate positions from the bit rate) is detected and the stream is decoded from its
start instead: the row says so (``frame_decoder`` / ``audio_decoder`` = ``pyav-from-start``).

The timeline: every time in a row is in seconds from the container's start time (ffmpeg's
``start_time``; what a player shows as 0:00 and what ``ffmpeg -ss`` counts from). MPEG-TS files
start at about 1.4 s and phone MP4s often at a few ms: on this timeline a clip's first frame is
at (about) 0 whatever the container counted from.

Container metadata (titles, tags) never decides whether a clip is usable: text that is not
valid UTF-8 is read with replacement characters.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pipeline.errors import ClipError

__all__ = ["AV_TIME_BASE", "FROM_START", "PILLOW", "SEEK", "ClipError", "Facts", "Media",
           "audio_stream", "decode", "frame_rate", "open_media", "origin_of", "probe", "seconds",
           "short_error", "video_stream"]

SEEK, FROM_START, PILLOW = "pyav", "pyav-from-start", "pillow"
AV_TIME_BASE = 1_000_000  # ffmpeg's container clock: microseconds

# PyAV is imported where a file is opened, not here: the shard reader and the GPU check import
# this package on images that decode no media and have no PyAV (tests/test_structure.py).


def short_error(exc: BaseException, limit: int = 160) -> str:
    """First line of an exception's message (the type's name when it has none)."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def _container_error(exc: BaseException) -> str:
    msg = re.sub(r":\s*'[^']*'$", "", short_error(exc))  # drop the echoed path
    return re.sub(r"^\[Errno -?\d+\]\s*", "", msg)


class Media:
    """An open media file that can go back to its start: ``seek`` to a time (False when the
    container cannot seek: FLV without an index, some raw streams), ``rewind`` to its first
    packet (reopened, which works for every container). Streams are named by index, so they
    survive a reopen."""

    def __init__(self, path: str):
        self.path = str(path)
        self.container = self._open()
        self.seekable = True

    def _open(self):
        import av  # optional: decoding only (the GPU check's image has no PyAV)

        try:
            container = av.open(self.path, metadata_errors="replace")
        except Exception as exc:  # noqa: BLE001 - any reader error means "not readable"
            raise ClipError(f"unreadable container: {_container_error(exc)}") from None
        for stream in container.streams:
            if stream.type in ("video", "audio"):
                stream.codec_context.thread_count = 1  # a decode task holds one CPU
        return container

    def stream(self, index: int):
        return self.container.streams[index]

    def seek(self, at: float, index: int | None = None) -> bool:
        """To the key frame at or before ``at`` seconds of the container's clock (of stream
        ``index``, else of any). False, and back at the start, when the container refuses."""
        import av  # optional: decoding only (the GPU check's image has no PyAV)

        if not self.seekable:
            self.rewind()
            return False
        try:
            if index is None:
                self.container.seek(max(0, int(at * AV_TIME_BASE)), backward=True)
            else:
                stream = self.stream(index)
                self.container.seek(max(0, math.floor(at / stream.time_base)), stream=stream,
                                    backward=True)
            return True
        except av.error.FFmpegError:
            self.seekable = False
            self.rewind()
            return False

    def rewind(self) -> None:
        self.container.close()
        self.container = self._open()

    def close(self) -> None:
        self.container.close()


@contextmanager
def open_media(path: str) -> Iterator[Media]:
    """A :class:`Media` for reading; ClipError when the file is not a readable container."""
    media = Media(path)
    try:
        yield media
    finally:
        media.close()


BAD_PACKETS_TOLERATED = 8  # consecutive undecodable packets skipped before giving up


def decode(container, stream) -> Iterator:
    """``container.decode(stream)`` that skips a few undecodable packets, as players do: after
    a seek into an MPEG program stream the first audio packet can start mid-frame."""
    import av  # optional: decoding only (the GPU check's image has no PyAV)

    bad = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            bad += 1
            if bad > BAD_PACKETS_TOLERATED:
                raise
            continue
        bad = 0
        yield from frames


def seconds(ticks: int | None, time_base: Fraction | None) -> float | None:
    """A stream timestamp in seconds; None when the container left it unset."""
    if ticks is None or time_base is None:
        return None
    return float(ticks * time_base)


@dataclass(frozen=True)
class Facts:
    """What the container header declares (no decoding)."""

    has_video: bool
    has_audio: bool
    declared_duration: float  # seconds, 0 when unknown
    width: int = 0  # coded size; a display matrix may turn it (``orientation``)
    height: int = 0
    source_sample_rate: int = 0
    source_channels: int = 0
    origin: float = 0.0  # container start time, seconds: 0 on the row's timeline


def video_stream(container) -> Any:
    """The stream a player shows: ffmpeg's ``av_find_best_stream`` (the default, else the
    largest picture), not simply the first."""
    return container.streams.best("video") if container.streams.video else None


def audio_stream(container) -> Any:
    """The stream a player plays, chosen with the video stream as reference."""
    if not container.streams.audio:
        return None
    return container.streams.best("audio", related=video_stream(container))


def frame_rate(stream) -> float:
    """A video stream's average frame rate (0 when the header gives none)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def origin_of(container) -> float:
    """The container's start time in seconds (0 when the header leaves it unset)."""
    start = container.start_time
    return 0.0 if start is None else start / AV_TIME_BASE


def probe(container) -> Facts:
    """Header facts of an open container."""
    video, audio = video_stream(container), audio_stream(container)
    kw = {}
    if video is not None:
        kw.update(width=int(video.codec_context.width or 0),
                  height=int(video.codec_context.height or 0))
    if audio is not None:
        kw.update(source_sample_rate=int(audio.sample_rate or audio.codec_context.sample_rate
                                         or 0),
                  source_channels=int(audio.codec_context.channels or 0))
    return Facts(video is not None, audio is not None, (container.duration or 0) / AV_TIME_BASE,
                 origin=origin_of(container), **kw)
