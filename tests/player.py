"""An independent reference for decoded rows: what ffmpeg's own player path shows and plays.

The ffmpeg command-line tool of the ``imageio-ffmpeg`` wheel (a dev dependency; its own build
of ffmpeg 9, not the libraries inside PyAV) decodes the whole file from its start and keeps
what a player would show: the stream ffmpeg picks by default, the display matrix (or a photo's
EXIF orientation) applied by its auto-rotation, and output-side ``-ss`` (decode everything,
drop what comes before the time), which is exact where input-side seeking is not.
"""

from __future__ import annotations

import io
import re
import subprocess

import imageio_ffmpeg
import numpy as np
from PIL import Image

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _run(args: list[str]) -> bytes:
    done = subprocess.run([FFMPEG, "-hide_banner", "-v", "error", *args], capture_output=True,
                          timeout=120)
    if done.returncode:
        raise RuntimeError(f"ffmpeg {' '.join(args)}: {done.stderr.decode(errors='replace')}")
    return done.stdout


def start(path) -> float:
    """The file's start time as ffmpeg reports it (``Duration: ..., start: S``)."""
    done = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True,
                          timeout=60)
    found = re.search(r"start: (-?[0-9.]+)", done.stderr.decode(errors="replace"))
    return float(found.group(1)) if found else 0.0


def frame_at(path, t: float) -> np.ndarray:
    """(H, W, 3) uint8: the first frame shown at or after ``t`` seconds after the file's start
    (timestamps kept as they are in the file, ``-copyts``: ffmpeg otherwise counts from the
    start of the streams it maps, which for an MPEG-TS is not the file's start)."""
    at = start(path) + t
    out = _run(["-copyts", "-i", str(path), "-vf", f"select=gte(t\\,{at:.6f})",
                "-frames:v", "1", "-fps_mode", "passthrough", "-f", "image2pipe",
                "-c:v", "png", "-"])
    return np.asarray(Image.open(io.BytesIO(out)).convert("RGB"))


def frame_number(path, n: int) -> np.ndarray:
    """(H, W, 3) uint8: the ``n``-th decoded frame (from 0), as shown."""
    out = _run(["-i", str(path), "-vf", f"select=eq(n\\,{n})", "-frames:v", "1",
                "-fps_mode", "passthrough", "-f", "image2pipe", "-c:v", "png", "-"])
    return np.asarray(Image.open(io.BytesIO(out)).convert("RGB"))


def image(path) -> np.ndarray:
    """A photo as ffmpeg shows it (its EXIF orientation applied)."""
    out = _run(["-i", str(path), "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"])
    return np.asarray(Image.open(io.BytesIO(out)).convert("RGB"))


def audio(path, rate: int = 16000) -> tuple[np.ndarray, float]:
    """The audio track ffmpeg plays, mono float32 at ``rate`` from its first sample, and that
    sample's time on the file's clock (``-copyts``; subtract :func:`start` for seconds after
    the file's start). A window is cut from this full decode, never from an input- or
    output-side ``-ss``: both restart ffmpeg's resampler at a rounded source sample, which
    moves every output sample by a fraction of a sample."""
    samples = np.frombuffer(_run(["-i", str(path), "-vn", "-ac", "1", "-ar", str(rate),
                                  "-f", "f32le", "-"]), np.float32)
    shown = subprocess.run([FFMPEG, "-hide_banner", "-copyts", "-i", str(path), "-vn",
                            "-af", "ashowinfo", "-frames:a", "1", "-f", "null", "-"],
                           capture_output=True, timeout=60).stderr.decode(errors="replace")
    first = re.search(r"pts_time:(-?[0-9.]+)", shown)
    return samples, float(first.group(1)) if first else 0.0


def audio_window(path, offset: float, seconds: float, rate: int = 16000) -> np.ndarray:
    """The ``seconds`` a player plays from ``offset`` seconds after the file's start."""
    samples, first = audio(path, rate)
    k = int(round((start(path) + offset - first) * rate))
    return samples[k:k + int(round(seconds * rate))]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation at lag 0 (1.0: the same samples, whatever the gain)."""
    n = min(len(a), len(b))
    a, b = np.asarray(a[:n], np.float64), np.asarray(b[:n], np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
