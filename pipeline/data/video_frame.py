"""The frame of a clip, as a player shows it at the asked-for time.

Seek to the key frame at or before the time, decode forward, keep the last frame whose own
timestamp is at or before it (each frame's timestamp is checked: a seek that lands late is
detected and the stream is decoded from its start). The display matrix (phones' rotation) is
applied, so the stored picture is the displayed one. See :mod:`pipeline.data.media` for the
timeline the returned times are on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data.media import (
    FROM_START,
    SEEK,
    ClipError,
    Media,
    decode,
    frame_rate,
    seconds,
    short_error,
)
from pipeline.data.orientation import Orientation, from_display_matrix
from pipeline.data.spans import Span

RESEEK_SECONDS = 3.0  # when a seek lands late, the second try starts this much earlier


@dataclass
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 RGB, displayed orientation, the stream's full size
    index: int  # frames before it, counted at the stream's average rate from its first frame
    time: float  # presentation time on the row's timeline (container start = 0), seconds
    num_frames: int  # the header's frame count, else the span times the average rate
    fps: float
    duration: float  # end of the last frame on the row's timeline, seconds
    orientation: Orientation
    decoder: str  # SEEK, or FROM_START when the seek landed after the time


def target_time(span: Span, origin: float, frame_time: float) -> float:
    """The instant to show, on the container's clock: the middle of the video (``frame_time <
    0``), else ``frame_time`` seconds from the container's start; past the end is an error,
    never another frame. For a constant-rate video of n frames the middle is frame n // 2."""
    if frame_time < 0:
        return span.start + span.length / 2
    if origin + frame_time >= span.end:
        raise ClipError(f"frame_time {frame_time:g} s is past the end of the video "
                        f"({span.end - origin:.3f} s)")
    return max(origin + frame_time, span.start)


def read_frame(media: Media, index: int, span: Span, origin: float, frame_time: float
               ) -> Frame:
    """The displayed frame at ``frame_time`` (< 0: the middle) of stream ``index``."""
    stream = media.stream(index)
    fps, declared = frame_rate(stream), int(stream.frames or 0)  # read before any reopen
    target = target_time(span, origin, frame_time)
    try:
        found, shown_at, decoder = _decode_at(media, index, target, span.start, fps)
        orientation = from_display_matrix(_display_matrix(found))
        image = orientation.apply(found.to_ndarray(format="rgb24"))
    except ClipError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder error names the clip's problem
        raise ClipError(f"cannot decode the frame at {target - origin:.3f} s: "
                        f"{short_error(exc)}") from None
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        raise ClipError(f"the frame at {target - origin:.3f} s decodes to shape {image.shape}")
    # Counting frames exactly would mean demuxing from the start (a cost that grows with the
    # clip): the number at the average rate is the frame's number in constant-rate video.
    return Frame(image=np.ascontiguousarray(image),
                 index=int(round((shown_at - span.start) * fps)) if fps else 0,
                 time=shown_at - origin,
                 num_frames=declared or max(1, int(round(span.length * fps))),
                 fps=fps, duration=span.end - origin, orientation=orientation,
                 decoder=decoder)


def _display_matrix(frame) -> bytes | None:
    for data in frame.side_data:
        if data.type.name == "DISPLAYMATRIX":
            return bytes(data)
    return None


def _decode_at(media: Media, index: int, target: float, first: float, fps: float):
    """(frame, its time on the container clock, decoder): the last frame starting at or
    before ``target`` seconds, decoded from the key frame before it; when a seek lands after
    the target (some demuxers seek by decode time or by an estimate of the byte position),
    from a few seconds earlier, then from the start of the file."""
    # Timestamps are exact ticks, but containers round them (mp4: 1/12800 s, TS: 1/90000 s):
    # a tenth of a frame absorbs the rounding without ever reaching the next frame.
    tol = 0.1 / fps if fps else 1e-4
    first_at = None
    for decoder, seek_to in ((SEEK, target), (SEEK, target - RESEEK_SECONDS),
                             (FROM_START, None)):
        if seek_to is None:
            media.rewind()
        elif seek_to < first or not media.seek(seek_to, index):
            continue
        # A stream without timestamps is placed by counting frames from its first one.
        found, found_at, first_at = _forward(media.container, media.stream(index),
                                             target + tol, fps, after_seek=decoder == SEEK,
                                             start=None if decoder == SEEK else first)
        if found is not None and first_at <= target + tol:
            return found, found_at, decoder
    if first_at is None:
        raise ClipError("video has no decodable frames")
    raise ClipError(f"cannot reach the frame at {target:.3f} s: decoding from the start gives "
                    f"a first frame at {first_at:.3f} s")


I_FRAME = 1  # AVPictureType: AV_PICTURE_TYPE_I


def _forward(container, stream, limit: float, fps: float, after_seek: bool,
             start: float | None = None):
    """Decode forward from the current position to the last frame starting at or before
    ``limit``: (that frame or None, its time, time of the first usable frame or None). After a
    seek, frames before the first key frame are dropped: a demuxer that seeks to a byte
    position (MPEG program streams) starts mid-GOP, and those frames decode from missing
    references into a picture no player shows. ``start``: the time of the first frame when
    decoding from the start (frames without any timestamp are counted from it)."""
    found, found_at, first_at = None, None, None
    last = None if start is None or not fps else start - 1.0 / fps
    clean = not after_seek
    for frame in decode(container, stream):
        t = _frame_seconds(frame, stream, last, fps)
        if t is None:
            continue
        last = t
        clean = clean or frame.key_frame or frame.pict_type == I_FRAME
        if not clean:
            continue
        if first_at is None:
            first_at = t
        if t > limit:
            break
        found, found_at = frame, t
    return found, found_at, first_at


def _frame_seconds(frame, stream, previous: float | None, fps: float) -> float | None:
    """A decoded frame's presentation time: its pts, else its dts (AVI's packed B-frames),
    else one frame after the previous one; None before any time is known."""
    for stamp in (frame.pts, frame.dts):
        t = seconds(stamp, frame.time_base or stream.time_base)
        if t is not None:
            return t
    if previous is not None and fps:
        return previous + 1.0 / fps
    return None
