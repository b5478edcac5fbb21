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

__all__ = ["FROM_START", "PILLOW", "SEEK", "ClipError", "Facts", "Media", "Span", "audio_stream",
           "decode", "measure_spans", "open_media", "origin_of", "probe", "seconds", "short_error",
           "video_stream"]

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
        import av

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
        import av

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
    import av

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


@dataclass(frozen=True)
class Span:
    """Where a stream's data lies, in seconds on the container's own clock (not yet minus
    ``origin``): ``start`` of its first frame, ``end`` of its last (measured from the packets
    at the end of the file, not the header)."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)


TAIL_SECONDS = 1.0  # how far before the declared end the packet scan starts


def measure_spans(media: Media, indices: list[int]) -> dict[int, Span]:
    """Each stream's first and last instant (container clock), from the packets at the start
    and in the last second of the file (demuxed, not decoded: bounded cost). Headers are not
    trusted for either: an AVI's header says its video starts at 0 when its first frame is at
    0.04 s, and a file cut short still declares its full length. Where the header declares no
    duration, or no packet of a stream lies past the declared end minus a second, the packets
    are scanned from the start."""
    container = media.container
    origin = origin_of(container)
    declared = (container.duration or 0) / AV_TIME_BASE
    starts = _packet_starts(media, indices)
    ends: dict[int, float] = {}
    # ffmpeg's Matroska reader gives the end time as the duration when timestamps start late
    tails = [origin + declared, declared] if declared > 0 else []
    for end in tails:
        if set(ends) != set(indices) and media.seek(end - TAIL_SECONDS):
            ends = _packet_ends(media, indices)
    counts: dict[int, int] = {}
    if set(ends) != set(indices):
        media.rewind()
        ends = _packet_ends(media, indices, counts)
    spans = {}
    for index in indices:
        stream = media.stream(index)
        start = starts.get(index, seconds(stream.start_time, stream.time_base))
        start = origin if start is None else start
        end = ends.get(index)
        if end is None and counts.get(index) and stream.type == "video":
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if rate:  # no timestamps at all: frames at the stream's rate
                end = start + counts[index] / float(rate)
        spans[index] = Span(start, max(start, end if end is not None else start))
    return spans


HEAD_PACKETS = 32  # B-frame reordering puts the first shown frame within a stream's first few


def _stamp(packet) -> int | None:
    return packet.pts if packet.pts is not None else packet.dts


def _packet_starts(media: Media, indices: list[int]) -> dict[int, float]:
    """Stream index -> where it starts, read from the start of a freshly opened container:
    a video stream at the earliest timestamp among its first ``HEAD_PACKETS`` packets (B-frame
    reordering), an audio stream at its first decoded sample (codecs drop their priming
    samples, which the packets still count)."""
    starts: dict[int, float] = {}
    seen: dict[int, int] = {}
    done: set[int] = set()
    streams = {i: media.stream(i) for i in indices}
    for packet in media.container.demux(list(streams.values())):
        index, stamp = packet.stream_index, _stamp(packet)
        if index not in streams or index in done:
            continue
        stream = streams[index]
        if stream.type == "audio":
            for frame in packet.decode():
                if frame.pts is not None and frame.samples:
                    starts[index] = float(frame.pts * (frame.time_base or stream.time_base))
                    done.add(index)
                    break
        elif stamp is not None:
            t = float(stamp * stream.time_base)
            starts[index] = min(starts.get(index, t), t)
            seen[index] = seen.get(index, 0) + 1
            if seen[index] >= HEAD_PACKETS:
                done.add(index)
        if len(done) == len(indices):
            break
    return starts


def _packet_ends(media: Media, indices: list[int], counts: dict[int, int] | None = None
                 ) -> dict[int, float]:
    """Stream index -> the latest ``pts + duration`` (dts when pts is unset) among the packets
    from the current position to the end of the file; ``counts`` gets the number of packets
    of each stream (a stream without timestamps has frames only at its rate)."""
    ends: dict[int, float] = {}
    streams = {i: media.stream(i) for i in indices}
    for packet in media.container.demux(list(streams.values())):
        index, stamp = packet.stream_index, _stamp(packet)
        if index not in streams or packet.size == 0:
            continue
        if counts is not None:
            counts[index] = counts.get(index, 0) + 1
        if stamp is None:
            continue
        stream = streams[index]
        step = packet.duration or _default_step(stream)
        end = float((stamp + step) * stream.time_base)
        ends[index] = max(ends.get(index, end), end)
    return ends


def _default_step(stream) -> int:
    """One frame in ``stream.time_base`` ticks when a packet does not say its duration."""
    if stream.type == "video":
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return int(round(1 / (rate * stream.time_base))) if rate else 0
    size, rate = stream.codec_context.frame_size, stream.codec_context.sample_rate
    return int(round(size / (rate * stream.time_base))) if size and rate else 0
