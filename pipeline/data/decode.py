"""Decode one clip into one row: plain functions, usable with or without Ray.

:func:`decode_clip` turns a video file into the media columns of :data:`schema.SCHEMA` or raises
:class:`ClipError` with a short, clear reason. :func:`make_row` adds the clip's annotation and
split and never raises: a failure becomes a row whose ``error`` column holds the reason.
:class:`ClipDecoder` applies :func:`make_row` to a batch (the ``map_batches`` callable).

What is taken from a clip (EZ-VSL conventions, see reference/DMT.md section 5):

- Frame: decord ``VideoReader``; frame ``len(vr) // 2`` or, when ``frame_time >= 0``, the last
  frame starting at or before ``frame_time`` seconds (past the end -> error, never another
  frame). Resized (bicubic) so the short side is ``frame_short_side``, aspect kept, stored as
  JPEG quality 90.
- Audio: decord ``AudioReader(mono=True, sample_rate=...)`` (ffmpeg's resampler and downmix).
  A window of ``audio_seconds`` centred on the frame's timestamp; when the window would cross
  the start or end of the track it is shifted inward (so it is all real audio; ``audio_offset``
  records where it starts); when the whole track is shorter than the window, the track is tiled
  from its start (``np.tile``, as EZ-VSL does; ``audio_tiled``). Clipped to [-1, 1], stored as
  int16 PCM. A window with RMS below ``silence_rms`` is rejected as silent audio.
- Container facts come from a PyAV probe of the header (stream presence, source sample rate
  and channels), which also gives clearer reasons than decord for files that are not videos.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data import schema

DEFAULT_SILENCE_RMS = 1e-4  # -80 dBFS; about 3 int16 steps
# A file whose video and audio both decode to less than this fraction of the duration the
# container declares (minus a quarter second of slack) is a cut-short download: rejected,
# because its "middle frame" would not be the clip's middle frame.
TRUNCATED_FRACTION = 0.8


class ClipError(Exception):
    """A clip that cannot be turned into a row; ``reason`` says why (one line)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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

    @classmethod
    def from_config(cls, data: Any) -> DecodeOptions:
        """From a ``DataConfig`` (fields it lacks keep their defaults)."""
        kw = {}
        for name in ("frame_time", "frame_short_side", "audio_seconds", "sample_rate",
                     "store_spectrogram", "silence_rms", "jpeg_quality"):
            if hasattr(data, name):
                kw[name] = getattr(data, name)
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- small codecs

def encode_jpeg(frame: np.ndarray, quality: int = schema.JPEG_QUALITY) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> uint8 HxWx3 RGB."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Resize so min(H, W) == short_side, keeping the aspect ratio (bicubic)."""
    from PIL import Image

    h, w = frame.shape[:2]
    if min(h, w) == short_side:
        return frame
    scale = short_side / min(h, w)
    if h <= w:
        nh, nw = short_side, max(1, int(round(w * scale)))
    else:
        nh, nw = max(1, int(round(h * scale))), short_side
    img = Image.fromarray(frame).resize((nw, nh), Image.Resampling.BICUBIC)
    return np.asarray(img)


def encode_pcm16(wave: np.ndarray) -> bytes:
    """float waveform in [-1, 1] -> int16 little-endian bytes (x * 32767, rounded)."""
    clipped = np.clip(np.asarray(wave, np.float32), -1.0, 1.0)
    return np.round(clipped * schema.PCM_SCALE).astype("<i2").tobytes()


def decode_pcm16(data: bytes) -> np.ndarray:
    """int16 little-endian bytes -> float32 waveform in [-1, 1]."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / schema.PCM_SCALE


_SPEC_CACHE: dict[tuple[int, int], Any] = {}


def log_spectrogram(wave: np.ndarray, n_fft: int = 512, hop: int = 238) -> np.ndarray:
    """EZ-VSL's log(power STFT + 1e-7): [n_fft // 2 + 1, frames] float32 (torchaudio, Hann)."""
    import torch
    import torchaudio

    key = (n_fft, hop)
    if key not in _SPEC_CACHE:
        _SPEC_CACHE[key] = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop,
                                                             power=2.0)
    with torch.no_grad():
        spec = _SPEC_CACHE[key](torch.from_numpy(np.asarray(wave, np.float32)))
    return torch.log(spec + 1e-7).numpy()


# ---------------------------------------------------------------- decoding

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


_DECORD_PREFIX = re.compile(r"^\[[0-9:]+\]\s*\S+:\d+:\s*")


def _short(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = _DECORD_PREFIX.sub("", text)
    return text[:limit]


def _probe(path: str) -> dict[str, Any]:
    """Header facts via PyAV; ClipError when the file is not a readable media container."""
    import av

    try:
        with av.open(path) as container:
            video = container.streams.video
            audio = container.streams.audio
            info: dict[str, Any] = {"has_video": bool(video), "has_audio": bool(audio),
                                    "declared_duration": (container.duration or 0) / 1e6}
            if audio:
                a = audio[0]
                info["source_sample_rate"] = int(a.sample_rate or a.codec_context.sample_rate
                                                 or 0)
                info["source_channels"] = int(a.codec_context.channels or 0)
            return info
    except Exception as exc:  # noqa: BLE001 - any reader error means "not readable"
        msg = _short(exc)
        msg = re.sub(r":\s*'[^']*'$", "", msg)  # drop the echoed path
        msg = re.sub(r"^\[Errno -?\d+\]\s*", "", msg)
        raise ClipError(f"unreadable container: {msg}") from None


def decode_clip(path: str | Path, clip_id: str, opts: DecodeOptions) -> dict[str, Any]:
    """Decode one video into the media columns of a row; raises :class:`ClipError`."""
    decord = import_decord()

    path = str(path)
    p = Path(path)
    if not p.is_file():
        raise ClipError("file not found")
    if p.stat().st_size == 0:
        raise ClipError("empty file (0 bytes)")
    info = _probe(path)
    if not info["has_video"]:
        raise ClipError("no video stream")

    # ---- frame
    try:
        vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except Exception as exc:  # noqa: BLE001
        raise ClipError(f"unreadable video: {_short(exc)}") from None
    n = len(vr)
    if n <= 0:
        raise ClipError("video has no frames")
    fps = float(vr.get_avg_fps())
    ts = np.asarray(vr.get_frame_timestamp(range(n)), np.float64).reshape(n, 2)
    duration = float(ts[-1, 1])
    if opts.frame_time < 0:
        index = n // 2
    else:
        if opts.frame_time >= duration:
            raise ClipError(f"frame_time {opts.frame_time:g} s is past the end of the video "
                            f"({duration:.3f} s)")
        # decord's timestamps are float32: allow 0.1 ms so 5.8 s finds the frame at 5.8000002 s
        index = int(np.searchsorted(ts[:, 0], opts.frame_time + 1e-4, side="right")) - 1
        index = min(max(index, 0), n - 1)
    try:
        frame = vr[index].asnumpy()
    except Exception as exc:  # noqa: BLE001
        raise ClipError(f"cannot decode frame {index} of {n}: {_short(exc)}") from None
    del vr
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
        raise ClipError(f"decoded frame has shape {frame.shape}, expected HxWx3")
    frame_time = float(ts[index, 0])
    src_h, src_w = int(frame.shape[0]), int(frame.shape[1])
    stored = resize_short_side(frame, opts.frame_short_side)
    jpeg = encode_jpeg(stored, opts.jpeg_quality)

    # ---- audio
    if not info["has_audio"]:
        raise ClipError("no audio stream")
    sr = int(opts.sample_rate)
    try:
        ar = decord.AudioReader(path, ctx=decord.cpu(0), sample_rate=sr, mono=True)
    except Exception as exc:  # noqa: BLE001
        raise ClipError(f"unreadable audio: {_short(exc)}") from None
    total = int(ar.shape[1])
    if total <= 0:
        raise ClipError("audio stream decodes to 0 samples")
    need = int(round(opts.audio_seconds * sr))
    if total >= need:
        centre = int(round(frame_time * sr))
        start = min(max(centre - need // 2, 0), total - need)
        wave = ar[start:start + need].asnumpy()[0]
        tiled = False
        offset = start / sr
    else:
        track = ar[0:total].asnumpy()[0]
        wave = np.tile(track, math.ceil(need / total))[:need]
        tiled = True
        offset = 0.0
    del ar
    declared = float(info.get("declared_duration") or 0.0)
    longest = max(duration, total / sr)
    if declared > 0 and longest < TRUNCATED_FRACTION * declared - 0.25:
        raise ClipError(f"truncated file: decodes {longest:.2f} s of the {declared:.2f} s "
                        f"the container declares")
    wave = np.clip(np.nan_to_num(wave.astype(np.float32)), -1.0, 1.0)
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    if rms < opts.silence_rms:
        raise ClipError(f"silent audio (RMS {rms:.1e} < {opts.silence_rms:g})")

    spec = None
    spec_bins = spec_frames = 0
    if opts.store_spectrogram:
        s = log_spectrogram(wave, opts.spec_n_fft, opts.spec_hop)
        spec_bins, spec_frames = int(s.shape[0]), int(s.shape[1])
        spec = s.astype(schema.SPEC_DTYPE).tobytes()

    return {
        "id": clip_id,
        "path": path,
        "frame_jpeg": jpeg,
        "frame_height": int(stored.shape[0]),
        "frame_width": int(stored.shape[1]),
        "frame_index": int(index),
        "frame_time": frame_time,
        "audio": encode_pcm16(wave),
        "sample_rate": sr,
        "audio_samples": int(need),
        "audio_offset": float(offset),
        "audio_tiled": tiled,
        "audio_rms": rms,
        "spectrogram": spec,
        "spec_bins": spec_bins,
        "spec_frames": spec_frames,
        "duration": duration,
        "fps": fps,
        "num_frames": int(n),
        "source_width": src_w,
        "source_height": src_h,
        "source_sample_rate": int(info.get("source_sample_rate", 0)),
        "source_channels": int(info.get("source_channels", 0)),
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
    row.update(id=str(item["id"]), path=str(item["path"]), split=str(item.get("split") or ""))
    row.update(_annotation_columns(ann))
    reason = item.get("error") or ann.get("error") or ""
    if not reason:
        try:
            row.update(decode_clip(item["path"], row["id"], opts))
        except ClipError as exc:
            reason = exc.reason
        except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the run
            reason = f"unexpected {type(exc).__name__}: {_short(exc)}"
    if reason:
        for name in schema.DECODED_SCHEMA.names:
            if name not in ("id", "path", "split", "category", "boxes", "boxes_256",
                            "box_format", "has_boxes"):
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
