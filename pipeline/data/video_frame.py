"""The frame of a clip: decord, checked against the container's frame size, else PyAV.

See :mod:`pipeline.data.media` for why decoders are checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.data.media import DECORD, PYAV, ClipError, Facts, import_decord, short_error


@dataclass
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 RGB at the container's size
    index: int
    time: float  # presentation time of the frame, seconds
    num_frames: int
    fps: float
    duration: float  # end of the last frame, seconds
    decoder: str  # DECORD or PYAV
    fallback_reason: str = ""


def pick_index(starts: np.ndarray, frame_time: float, duration: float) -> int:
    """The middle frame (``frame_time < 0``), else the last frame starting at or before
    ``frame_time``; past the end is an error, never another frame."""
    n = len(starts)
    if frame_time < 0:
        return n // 2
    if frame_time >= duration:
        raise ClipError(f"frame_time {frame_time:g} s is past the end of the video "
                        f"({duration:.3f} s)")
    # decord's timestamps are float32: allow 0.1 ms so 5.8 s finds the frame at 5.8000002 s
    index = int(np.searchsorted(starts, frame_time + 1e-4, side="right")) - 1
    return min(max(index, 0), n - 1)


def _shape_ok(image: np.ndarray, facts: Facts) -> bool:
    want = (facts.height, facts.width, 3) if facts.width and facts.height else None
    if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
        return False
    return want is None or image.shape == want


def read_frame(path: str, frame_time: float, facts: Facts) -> Frame:
    """The chosen frame, by decord if its output passes the checks, else by PyAV."""
    decord = import_decord()
    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except Exception as exc:  # noqa: BLE001
        return _pyav_frame(path, frame_time, facts, None, f"decord cannot open: "
                                                          f"{short_error(exc)}")
    n = len(vr)
    if n <= 0:
        raise ClipError("video has no frames")
    ts = np.asarray(vr.get_frame_timestamp(range(n)), np.float64).reshape(n, 2)
    duration, fps = float(ts[-1, 1]), float(vr.get_avg_fps())
    index = pick_index(ts[:, 0], frame_time, duration)
    try:
        image = vr[index].asnumpy()
    except Exception as exc:  # noqa: BLE001
        image, why = None, f"decord cannot decode frame {index}: {short_error(exc)}"
    del vr
    if image is not None and _shape_ok(image, facts):
        return Frame(image, index, float(ts[index, 0]), n, fps, duration, DECORD)
    if image is not None:
        why = (f"decord returned shape {tuple(image.shape)}, the container declares "
               f"{facts.height}x{facts.width}x3")
    known = (index, float(ts[index, 0]), n, fps, duration)
    return _pyav_frame(path, frame_time, facts, known, why)


def _pyav_frame(path: str, frame_time: float, facts: Facts, known: tuple | None,
                why: str) -> Frame:
    """PyAV's decode of the frame decord chose (``known``: index, time, n, fps, duration), or,
    when decord could not list the frames, of the frame chosen from PyAV's own timestamps."""
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            if known is None:
                starts, fps, duration = _pyav_timestamps(container, stream)
                index = pick_index(starts, frame_time, duration)
                known = (index, float(starts[index]), len(starts), fps, duration)
            index, t, n, fps, duration = known
            image = _decode_at(container, stream, t, fps)
    except ClipError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ClipError(f"unreadable video: {why}; pyav: {short_error(exc)}") from None
    if image is None or not _shape_ok(image, facts):
        got = None if image is None else tuple(image.shape)
        raise ClipError(f"cannot decode the frame: {why}; pyav returned {got}")
    return Frame(image, index, t, n, fps, duration, PYAV, why)


def _pyav_timestamps(container, stream) -> tuple[np.ndarray, float, float]:
    """Frame start times (sorted packet pts, no decoding), average fps, end of the last frame."""
    tb = float(stream.time_base)
    pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
    if not pts:
        raise ClipError("video has no frames")
    starts = np.asarray(pts, np.float64) * tb
    fps = float(stream.average_rate or 0) or (len(starts) / max(starts[-1] - starts[0], 1e-9))
    return starts, fps, float(starts[-1] + 1.0 / fps)


def _decode_at(container, stream, t: float, fps: float) -> np.ndarray | None:
    """Seek to the key frame before ``t`` and decode forward to the frame that starts at ``t``
    (within half a frame)."""
    tb = float(stream.time_base)
    tol = 0.5 / max(fps, 1e-3)
    container.seek(max(0, int(math.floor((t - tol) / tb))), stream=stream, backward=True)
    best = None
    for frame in container.decode(stream):
        ft = float(frame.pts * tb) if frame.pts is not None else float(frame.time or 0.0)
        if ft > t + tol:
            break
        best = frame
        if abs(ft - t) <= tol:
            break
    return None if best is None else best.to_ndarray(format="rgb24")
