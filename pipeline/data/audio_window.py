"""The audio window of a clip: mono at the asked-for rate, centred on the frame's time.

The samples are the ones a full decode of the track gives (ffmpeg's resampler and downmix,
PyAV ``AudioResampler``, applied from the track's first sample): sample ``k`` of the output
lies at ``track start + k / rate``. Only the window is decoded: seek to 0.25 s before it,
decode forward, drop source samples up to the next point the source and output sample grids
share (every 441 samples from 44.1 to 16 kHz, i.e. 10 ms from the track's start) and
resample from there. How exact that is depends on the container's timestamps:

- where it stamps audio to the sample (a time base at least as fine as the sample period:
  MP4/MOV, MPEG-TS/PS, Ogg, WAV), the window's samples are the full decode's samples;
- where timestamps are milliseconds (Matroska/WebM, FLV, ASF), a seek's landing point is
  known to half a millisecond (a codec's priming can add as much again): the window lies
  within 1 ms (16 samples at 16 kHz) of the full decode's. Decoding those tracks from the
  start would make them exact at a cost that grows with the clip's length, for a shift far
  below the 15 ms hop of the spectrogram.

A seek that lands after the window, or a container that refuses to seek, falls back to a
decode from the track's first sample (``FROM_START``). See :mod:`pipeline.data.media` for
the timeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.data.media import (
    FROM_START,
    SEEK,
    ClipError,
    Media,
    decode,
    seconds,
    short_error,
)
from pipeline.data.spans import Span

# Decoding starts this much before the window: the resampler's filter and a codec's overlap
# (AAC, MP3, Vorbis frames overlap their neighbours) settle before the first kept sample.
LEAD_SECONDS = 0.25


@dataclass
class AudioWindow:
    wave: np.ndarray  # (need,) float32 mono, clipped to [-1, 1]
    offset: float  # time of the window's first sample on the row's timeline (0 when tiled)
    tiled: bool
    track_seconds: float  # length of the track
    decoder: str  # SEEK, or FROM_START


def window_start(total: int, need: int, centre: int) -> int:
    """Start of a ``need``-sample window centred on sample ``centre``, shifted inward so it lies
    inside a track of ``total >= need`` samples."""
    return min(max(centre - need // 2, 0), total - need)


def tile(track: np.ndarray, need: int) -> np.ndarray:
    """A track shorter than the window, repeated from its start (EZ-VSL's ``np.tile``)."""
    return np.tile(track, math.ceil(need / len(track)))[:need]


def read_audio_window(media: Media, index: int, span: Span, origin: float, sr: int,
                      centre: float | None, window_seconds: float) -> AudioWindow:
    """The ``window_seconds`` window of stream ``index`` centred on ``centre`` seconds of the
    row's timeline (None: the middle of the track), shifted inward at the track's ends, or the
    whole track tiled when it is shorter than the window."""
    need = int(round(window_seconds * sr))
    total = int(math.floor(span.length * sr + 1e-6))
    middle = span.start + span.length / 2 if centre is None else origin + centre
    wanted = window_start(total, need, int(round((middle - span.start) * sr)))
    try:
        landed = None
        if total >= need:
            landed = _seek_window(media, index, span.start, sr, wanted, need)
        if landed is not None:
            track, k0, decoder = *landed, SEEK
        else:  # from the start, as far as the window centred on `middle` could reach
            media.rewind()
            until = span.end if total < need else max(span.start + (wanted + need) / sr,
                                                      middle + window_seconds / 2)
            track = _resampled(media.container, media.stream(index), until + LEAD_SECONDS, sr)
            k0, decoder = 0, FROM_START
    except ClipError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder error names the clip's problem
        raise ClipError(f"unreadable audio: {short_error(exc)}") from None
    if not len(track):
        raise ClipError("audio stream decodes to 0 samples")
    if k0 == 0 and len(track) < need:
        return AudioWindow(_clean(tile(track, need)), 0.0, True, len(track) / sr, decoder)
    if k0 == 0:  # the whole track: its real length decides where the window fits
        wanted = window_start(len(track), need, int(round((middle - span.start) * sr)))
    wave = track[wanted - k0:wanted - k0 + need]
    if len(wave) != need:
        raise ClipError(f"audio ends {(len(track) + k0) / sr:.3f} s into the track, before "
                        f"the window that its packets promised")
    return AudioWindow(_clean(wave), span.start + wanted / sr - origin, False,
                       span.length, decoder)


def _seek_window(media: Media, index: int, start: float, sr: int, wanted: int, need: int):
    """(samples, k0): output samples ``k0, k0 + 1, ...`` of the track (sample 0 at ``start``)
    covering [``wanted``, ``wanted + need``), decoded from a seek; None when the container
    refuses the seek or it lands after the window."""
    stream = media.stream(index)
    rate = int(stream.codec_context.sample_rate or stream.sample_rate)
    first = start + wanted / sr
    if first - LEAD_SECONDS <= start or not media.seek(first - LEAD_SECONDS, index):
        return None
    # The grids meet every `step` source samples (= `out_step` output samples).
    step = rate // math.gcd(rate, sr)
    out_step = sr // math.gcd(rate, sr)
    source, t0 = _source(media.container, media.stream(index), first + need / sr + LEAD_SECONDS)
    if t0 is None:
        return None
    n0 = int(round((t0 - start) * rate))  # exact: the timestamps name samples
    drop = (-n0) % step
    k0 = (n0 + drop) // step * out_step
    if k0 > wanted or source.shape[1] <= drop:
        return None
    mono = _resample_array(source[:, drop:], rate, sr)
    if k0 + len(mono) < wanted + need:
        return None  # the file ends before the window: the whole track decides
    return mono, k0


def _placed_frames(container, stream, until: float):
    """(frame, its time or None) decoded from the current position, from the first frame with
    a timestamp (samples before it cannot be placed) to the one reaching ``until`` seconds."""
    placed = False
    for frame in decode(container, stream):
        t = seconds(frame.pts, frame.time_base or stream.time_base)
        if not placed and t is None:
            continue
        placed = True
        yield frame, t
        if t is not None and t + frame.samples / frame.sample_rate >= until:
            return


def _source(container, stream, until: float) -> tuple[np.ndarray, float | None]:
    """Decoded source samples from the current position to ``until`` seconds, as float32
    (channels, n) at the stream's own rate, and the time of the first; (empty, None) when
    nothing decoded."""
    import av  # optional: decoding only (the GPU check's image has no PyAV)

    planar, chunks, t0 = None, [], None
    for frame, t in _placed_frames(container, stream, until):
        if planar is None:
            t0 = t
            planar = av.AudioResampler(format="fltp", layout=frame.layout.name,
                                       rate=frame.sample_rate)
        chunks.extend(out.to_ndarray() for out in planar.resample(frame))
    if planar is not None:
        chunks.extend(out.to_ndarray() for out in planar.resample(None))
    if not chunks:
        return np.zeros((1, 0), np.float32), None
    return np.concatenate(chunks, axis=1).astype(np.float32), t0


def _resample_array(source: np.ndarray, rate: int, sr: int) -> np.ndarray:
    """(channels, n) float32 at ``rate`` -> mono at ``sr`` with ffmpeg's downmix and resampler
    (the same conversion a full decode applies)."""
    import av  # optional: decoding only (the GPU check's image has no PyAV)

    layouts = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}
    layout = layouts.get(source.shape[0], f"{source.shape[0]}c")
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(source), format="fltp",
                                       layout=layout)
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
    out = [o.to_ndarray().reshape(-1) for o in resampler.resample(frame)]
    out += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def _resampled(container, stream, until: float, sr: int) -> np.ndarray:
    """Mono samples at ``sr`` decoded from the current position to ``until`` seconds (or the
    end), downmixed and resampled frame by frame."""
    import av  # optional: decoding only (the GPU check's image has no PyAV)

    resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
    chunks = [out.to_ndarray().reshape(-1) for frame, _ in _placed_frames(container, stream, until)
              for out in resampler.resample(frame)]
    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def _clean(wave: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(np.asarray(wave, np.float32)), -1.0, 1.0)
