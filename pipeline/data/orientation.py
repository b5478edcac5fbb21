"""The picture as a player shows it: a video's display matrix and a photo's EXIF orientation.

Phones record portrait video as landscape pixels plus a *display matrix* that tells players to
turn (and sometimes mirror) the picture; cameras do the same for photos with an EXIF
``Orientation`` tag. Boxes are drawn on what a player shows, so every row stores the displayed
picture and records how it was obtained from the coded one:

- ``display_rotation``: 0, 90, 180 or 270 -- degrees the coded picture is turned
  counter-clockwise (the sign ffmpeg, ffprobe and PyAV's ``VideoFrame.rotation`` use);
- ``display_hflip``: after the turn, the picture is mirrored left to right.

These 8 cases are every right-angle orientation. A matrix that turns by another angle or
shears is refused (a :class:`~pipeline.data.media.ClipError` naming the angle).

How the matrix maps pixels (libavutil's ``display.h``): a coded pixel at column ``p``, row
``q`` is shown at ``x' = a*p + c*q``, ``y' = b*p + d*q`` (plus a translation that keeps the
picture on screen), where ``a, b, c, d`` are the matrix entries 0, 1, 3, 4 in 16.16 fixed
point. ``tests/test_media_corpus.py`` checks the result against ffmpeg's own player path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import ClipError


@dataclass(frozen=True)
class Orientation:
    """``rotation`` degrees counter-clockwise, then a left-right mirror when ``hflip``."""

    rotation: int = 0
    hflip: bool = False

    @property
    def swaps_sides(self) -> bool:
        """Width and height trade places (a quarter turn)."""
        return self.rotation in (90, 270)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) coded picture -> the displayed picture (a view, no copy)."""
        shown = np.rot90(image, self.rotation // 90)
        return shown[:, ::-1] if self.hflip else shown


UPRIGHT = Orientation()
ORIENTATIONS = tuple(Orientation(r, h) for h in (False, True) for r in (0, 90, 180, 270))


def from_display_matrix(matrix: bytes | np.ndarray | None) -> Orientation:
    """The orientation a 3x3 display matrix (9 int32, as in side data) asks for."""
    if matrix is None:
        return UPRIGHT
    m = np.frombuffer(matrix, "<i4") if isinstance(matrix, bytes | bytearray | memoryview) \
        else np.asarray(matrix).reshape(-1)
    if m.size != 9:
        raise ClipError(f"display matrix of {m.size} values, expected 9")
    a, b, c, d = (int(np.sign(v)) for v in (m[0], m[1], m[3], m[4]))
    # Where a 2x3 picture's corners go, as the matrix maps them, compared with each candidate.
    probe = np.arange(6).reshape(2, 3)
    wanted = _mapped(probe, a, b, c, d)
    for candidate in ORIENTATIONS:
        if wanted is not None and np.array_equal(candidate.apply(probe[..., None])[..., 0],
                                                 wanted):
            return candidate
    scale = np.hypot(m[0], m[1]) or 1.0
    angle = float(np.degrees(np.arctan2(m[1] / scale, m[0] / scale)))
    raise ClipError(f"display matrix turns the picture by {angle:.1f} degrees or shears it: "
                    f"only quarter turns and mirrors are supported")


def _mapped(coded: np.ndarray, a: int, b: int, c: int, d: int) -> np.ndarray | None:
    """The picture (rows = y', columns = x') that ``x' = a*p + c*q, y' = b*p + d*q`` makes of
    ``coded`` (rows = q, columns = p), moved back on screen; None unless it is a permutation."""
    if sorted((abs(a), abs(b), abs(c), abs(d))) != [0, 0, 1, 1] or a * c != 0 or b * d != 0:
        return None
    q, p = np.indices(coded.shape)
    x, y = a * p + c * q, b * p + d * q
    shown = np.empty((y.max() - y.min() + 1, x.max() - x.min() + 1), coded.dtype)
    shown[y - y.min(), x - x.min()] = coded
    return shown


# EXIF Orientation tag (TIFF 6.0 / Exif 2.3) -> the same two numbers.
_EXIF = {1: UPRIGHT, 2: Orientation(0, True), 3: Orientation(180, False),
         4: Orientation(180, True), 5: Orientation(270, True), 6: Orientation(270, False),
         7: Orientation(90, True), 8: Orientation(90, False)}


def from_exif(tag: int | None) -> Orientation:
    """A photo's EXIF orientation (1-8; missing or unknown values: upright, as viewers do)."""
    return _EXIF.get(int(tag or 1), UPRIGHT)
