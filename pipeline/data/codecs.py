"""Byte formats of a shard row: JPEG frames, int16 PCM audio, float16 spectrograms, and the
frame resize applied before storing. Plain numpy / Pillow / torchaudio, no Ray."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.data import schema
from pipeline.data.orientation import Orientation, from_exif
from pipeline.errors import ClipError

EXIF_ORIENTATION = 0x0112  # the TIFF/EXIF tag


def encode_jpeg(frame: np.ndarray, quality: int = schema.JPEG_QUALITY) -> bytes:
    """uint8 HxWx3 RGB -> JPEG bytes."""
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> uint8 HxWx3 RGB."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


MAX_FRAME_PIXELS = 40_000_000  # data.max_frame_pixels: 8K is 33 MP; 20,000 x 20,000 is 400 MP


def read_image(path, max_pixels: int = MAX_FRAME_PIXELS) -> tuple[np.ndarray, Orientation]:
    """A frame image file (JPEG, PNG) -> (uint8 HxWx3 RGB as a viewer shows it, the EXIF
    orientation that was applied), checked; ClipError naming why not. An image of more than
    ``max_pixels`` is refused from its header, before decoding."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ClipError(f"frame image of {width}x{height} pixels, over "
                                f"data.max_frame_pixels={max_pixels}")
            orientation = from_exif(img.getexif().get(EXIF_ORIENTATION))
            frame = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except Image.DecompressionBombError:  # Pillow's own bound (2 x 89 MP), met at open
        raise ClipError(f"frame image of more than {2 * Image.MAX_IMAGE_PIXELS} pixels, over "
                        f"data.max_frame_pixels={max_pixels}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        text = text.replace(f" '{path}'", "").replace(f" {path}", "")  # the path is the row's
        raise ClipError(f"unreadable frame image: {text[:120]}") from None
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
        raise ClipError(f"frame image decodes to shape {frame.shape}, expected HxWx3")
    return frame, orientation


def resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Resize so min(H, W) == short_side, keeping the aspect ratio (bicubic)."""
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
    # heavy: only decode options that store a spectrogram (data.store_spectrogram) load torch
    import torch
    import torchaudio

    key = (n_fft, hop)
    if key not in _SPEC_CACHE:
        _SPEC_CACHE[key] = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop,
                                                             power=2.0)
    with torch.no_grad():
        spec = _SPEC_CACHE[key](torch.from_numpy(np.asarray(wave, np.float32)))
    return torch.log(spec + 1e-7).numpy()
