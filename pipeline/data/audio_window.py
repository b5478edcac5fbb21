"""The audio window of a clip: decord, checked for its sample count, else PyAV.

See :mod:`pipeline.data.media` for why decoders are checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.data.media import DECORD, PYAV, ClipError, import_decord, short_error


@dataclass
class AudioWindow:
    wave: np.ndarray  # (need,) float32 mono, clipped to [-1, 1]
    offset: float  # start of the window in the track, seconds (0 when tiled)
    tiled: bool
    track_seconds: float  # length of the decoded track
    decoder: str
    fallback_reason: str = ""


def window_start(total: int, need: int, centre: int) -> int:
    """Start of a ``need``-sample window centred on sample ``centre``, shifted inward so it lies
    inside a track of ``total >= need`` samples."""
    return min(max(centre - need // 2, 0), total - need)


def centre_sample(total: int, sr: int, centre_time: float | None) -> int:
    """The window's centre in samples: ``centre_time`` seconds, or the middle of the track when
    the frame's time is unknown (the frames+audio layout)."""
    return total // 2 if centre_time is None else int(round(centre_time * sr))


def cut_window(track: np.ndarray, sr: int, centre_time: float | None, seconds: float
               ) -> tuple[np.ndarray, float, bool]:
    """(wave, offset, tiled) of a mono track (N,): the window centred on ``centre_time`` (None:
    the track's middle), or the track tiled from its start when it is shorter than the window
    (EZ-VSL's ``np.tile``)."""
    need = int(round(seconds * sr))
    total = len(track)
    if total >= need:
        start = window_start(total, need, centre_sample(total, sr, centre_time))
        return track[start:start + need], start / sr, False
    return np.tile(track, math.ceil(need / total))[:need], 0.0, True


def read_audio_window(path: str, sr: int, centre_time: float | None, seconds: float
                      ) -> AudioWindow:
    """The window around ``centre_time`` (None: the track's middle) by decord if it has the
    right sample count in one channel, else by PyAV. Any container ffmpeg reads: a video's
    audio track, or a WAV of any rate and channel count (resampled, downmixed)."""
    decord = import_decord()
    need = int(round(seconds * sr))
    why = ""
    try:
        ar = decord.AudioReader(path, ctx=decord.cpu(0), sample_rate=sr, mono=True)
        total = int(ar.shape[1])
        if total <= 0:
            raise ClipError("audio stream decodes to 0 samples")
        if total >= need:
            start = window_start(total, need, centre_sample(total, sr, centre_time))
            raw = ar[start:start + need].asnumpy()
            wave, offset, tiled = raw, start / sr, False
        else:
            raw = ar[0:total].asnumpy()
            wave, offset, tiled = raw, 0.0, True
        del ar
        if raw.ndim == 2 and raw.shape[0] == 1 and raw.shape[1] == min(total, need):
            if tiled:
                wave, _, _ = cut_window(raw[0], sr, centre_time, seconds)
            else:
                wave = raw[0]
            return AudioWindow(_clean(wave), offset, tiled, total / sr, DECORD)
        why = (f"decord returned audio of shape {tuple(raw.shape)}, the window needs "
               f"(1, {min(total, need)})")
    except ClipError:
        raise
    except Exception as exc:  # noqa: BLE001
        why = f"decord cannot read the audio: {short_error(exc)}"
    return _pyav_audio(path, sr, centre_time, seconds, why)


def _pyav_audio(path: str, sr: int, centre_time: float | None, seconds: float, why: str
                ) -> AudioWindow:
    import av

    try:
        with av.open(path) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
            chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(stream)
                      for out in resampler.resample(frame)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except Exception as exc:  # noqa: BLE001
        raise ClipError(f"unreadable audio: {why}; pyav: {short_error(exc)}") from None
    track = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if not len(track):
        raise ClipError("audio stream decodes to 0 samples")
    wave, offset, tiled = cut_window(track, sr, centre_time, seconds)
    if wave.shape != (int(round(seconds * sr)),):
        raise ClipError(f"audio window has {wave.shape} samples, expected "
                        f"{int(round(seconds * sr))}")
    return AudioWindow(_clean(wave), offset, tiled, len(track) / sr, PYAV, why)


def _clean(wave: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(np.asarray(wave, np.float32)), -1.0, 1.0)
