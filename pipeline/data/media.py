"""What every media reader shares: the clip error, the container probe, decord's import.

The readers (``video_frame.read_frame``, ``audio_window.read_audio_window``) pick one frame and
one audio window from a media file with checked decoders.

decord is the fast path; PyAV (the same ffmpeg underneath, driven frame by frame) is the
fallback. A decoder's output is checked, not trusted:

- the frame must be (H, W, 3) at the size the container declares (decord2 3.4 on some x86 CPUs
  returns a garbled 4-channel array for 96- and 32-pixel-wide videos); otherwise the same frame
  (same index and timestamp) is decoded again with PyAV;
- the audio window must hold exactly the samples the window needs, in one channel; otherwise
  the track is decoded again with PyAV.

Only a clip that neither decoder can read raises :class:`ClipError`. Which decoder produced the
frame and the audio is returned with them (``decoder``), so rows and ``summary.json`` can say.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

DECORD, PYAV = "decord", "pyav"


class ClipError(Exception):
    """A clip that cannot be turned into a row; ``reason`` says why (one line)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_DECORD_PREFIX = re.compile(r"^\[[0-9:]+\]\s*\S+:\d+:\s*")


def short_error(exc: BaseException, limit: int = 160) -> str:
    """First line of an exception's message, without decord's source-location prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _DECORD_PREFIX.sub("", text)[:limit]


def import_decord():
    """``import decord`` without its CUDA preload.

    decord2 (3.x) dlopens every shared library under ``site-packages/nvidia/*/lib`` at import
    time when such a folder exists -- here torch's CUDA runtime, cuDNN and cuBLAS -- which
    costs about 600 MB of RSS and 0.5 s per process, although this pipeline only decodes on
    the CPU (``decord.cpu(0)``) and libdecord.so does not link against CUDA. Hiding the
    ``nvidia`` package from that one lookup during the import brings a decode worker from
    ~650 MB to ~40 MB. Set ``DMT_DECORD_CUDA=1`` to keep decord's preload (GPU decoding).
    """
    import sys

    if "decord" in sys.modules or os.environ.get("DMT_DECORD_CUDA") == "1":
        import decord

        return decord
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "nvidia" else real(name, *args, **kwargs)

    importlib.util.find_spec = find_spec
    try:
        import decord
    finally:
        importlib.util.find_spec = real
    return decord


# ---------------------------------------------------------------- container facts

@dataclass(frozen=True)
class Facts:
    """What the container header declares (PyAV probe)."""

    has_video: bool
    has_audio: bool
    declared_duration: float  # seconds, 0 when unknown
    width: int = 0
    height: int = 0
    source_sample_rate: int = 0
    source_channels: int = 0


def probe(path: str) -> Facts:
    """Header facts via PyAV; ClipError when the file is not a readable media container."""
    import av

    try:
        with av.open(path) as container:
            video, audio = container.streams.video, container.streams.audio
            kw = {}
            if video:
                kw.update(width=int(video[0].codec_context.width or 0),
                          height=int(video[0].codec_context.height or 0))
            if audio:
                a = audio[0]
                kw.update(source_sample_rate=int(a.sample_rate or a.codec_context.sample_rate
                                                 or 0),
                          source_channels=int(a.codec_context.channels or 0))
            return Facts(bool(video), bool(audio), (container.duration or 0) / 1e6, **kw)
    except Exception as exc:  # noqa: BLE001 - any reader error means "not readable"
        msg = re.sub(r":\s*'[^']*'$", "", short_error(exc))  # drop the echoed path
        msg = re.sub(r"^\[Errno -?\d+\]\s*", "", msg)
        raise ClipError(f"unreadable container: {msg}") from None
