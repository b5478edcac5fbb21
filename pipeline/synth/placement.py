"""Where objects go: box sizes and positions chosen with the field's metric in mind.

The metric (docs/method.md §8.2) thresholds a predicted map at its median, so it always selects
half the frame. Two consequences shape the layout:

- A sounding box covering a fraction ``a`` of the frame scores at most cIoU ``2a``; below 25% of
  the frame a perfect map still fails the 0.5 bar. Sounding areas are therefore drawn with a
  density rising linearly from ``area_min`` to ``area_max`` (mostly large boxes, a few below the
  bar), which keeps the oracle's ceiling near 0.95 for the default 0.2-0.45 range.
- Any centre-weighted map selects the same central disc of half the frame. A large box near the
  centre is inside that disc, and a "predict the middle" map would pass. Sounding boxes are put
  where the disc scores cIoU <= ``CENTRE_CIOU_MAX`` on them, or, for boxes too large to have such
  a place, among the 10% of positions where it scores lowest (a corner).

Positions are scored for every candidate at once with integral images, so the rule is exact
(no rejection loop) and a whole layout takes about 10 ms.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

CENTRE_CIOU_MAX = 0.35  # sounding boxes: the centre prior's cIoU on them, at most (if possible)
CENTRE_FALLBACK_QUANTILE = 0.10  # else: the most off-centre 10% of the places the box fits
MARGIN = 2  # pixels kept free along the frame's edges at the middle frame
ASPECT = (0.75, 4 / 3)  # width / height of a box, log-uniform
SOUNDER_OVERLAP = 0.0  # sounding boxes never overlap each other
DISTRACTOR_UNDER_SOUNDER = 0.25  # a distractor may hide this much of its box behind a sounder
DISTRACTOR_OVERLAP = 0.3  # ... and overlap other distractors this much
SHRINK, MAX_SHRINKS = 0.85, 12  # a box with no free place is shrunk and tried again


@lru_cache(maxsize=8)
def centre_disc(size: int) -> np.ndarray:
    """The pixels a centre-weighted map selects under the median rule (``pred >= median``)."""
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size]
    pred = -((xx - c) ** 2 + (yy - c) ** 2)
    disc = pred >= np.sort(pred.ravel())[size * size // 2]
    disc.setflags(write=False)
    return disc


def _integral(img: np.ndarray) -> np.ndarray:
    ii = np.zeros((img.shape[0] + 1, img.shape[1] + 1), dtype=np.int64)
    ii[1:, 1:] = img.astype(np.int64).cumsum(0).cumsum(1)
    return ii


@lru_cache(maxsize=8)
def _disc_integral(size: int) -> np.ndarray:
    return _integral(centre_disc(size))


def _box_sums(ii: np.ndarray, w: int, h: int, size: int) -> np.ndarray:
    """Sum of the image under a ``w x h`` box for every top-left ``(y, x)`` within the margins.

    Entry ``[j, i]`` is the box at ``x = MARGIN + i``, ``y = MARGIN + j``.
    """
    y0, y1 = MARGIN, size - MARGIN - h + 1
    x0, x1 = MARGIN, size - MARGIN - w + 1
    return (ii[y0 + h:y1 + h, x0 + w:x1 + w] - ii[y0:y1, x0 + w:x1 + w]
            - ii[y0 + h:y1 + h, x0:x1] + ii[y0:y1, x0:x1])


class Occupancy:
    """How many placed boxes cover each pixel, kept as an integral image for fast box sums."""

    def __init__(self, size: int):
        self.counts = np.zeros((size, size), dtype=np.int32)
        self.integral = _integral(self.counts)

    def add(self, x: int, y: int, w: int, h: int) -> None:
        self.counts[y:y + h, x:x + w] += 1
        self.integral = _integral(self.counts)


def sounder_area(rng: np.random.Generator, area_min: float, area_max: float) -> float:
    """A sounding box area: density rising linearly from ``area_min`` to ``area_max``."""
    return area_min + (area_max - area_min) * float(np.sqrt(rng.random()))


def box_size(rng: np.random.Generator, area: float, size: int) -> tuple[int, int]:
    """``(w, h)`` in pixels of a box covering ``area`` of a ``size x size`` frame."""
    aspect = float(np.exp(rng.uniform(np.log(ASPECT[0]), np.log(ASPECT[1]))))
    limit = size - 2 * MARGIN
    w = int(np.clip(round(np.sqrt(area * aspect) * size), 4, limit))
    h = int(np.clip(round(area * size * size / w), 4, limit))
    return w, h


def place(rng: np.random.Generator, w: int, h: int, size: int, *, sounders: Occupancy,
          distractors: Occupancy, sounding: bool, overlap: float = SOUNDER_OVERLAP
          ) -> tuple[int, int] | None:
    """A top-left ``(x, y)`` for a ``w x h`` box, or None when no place satisfies the rules.

    ``sounders`` and ``distractors`` hold the boxes placed so far (sounders are placed before
    any distractor, so only distractors look at the second); ``overlap``: the fraction of a
    sounding box that may lie under ``sounders``.
    """
    area = w * h
    if sounding:
        ok = _box_sums(sounders.integral, w, h, size) <= overlap * area
        inside = _box_sums(_disc_integral(size), w, h, size)
        centre_ciou = inside / (area + int(centre_disc(size).sum()) - inside)
        if ok.any():
            limit = max(CENTRE_CIOU_MAX, float(np.quantile(centre_ciou[ok],
                                                          CENTRE_FALLBACK_QUANTILE)))
            ok &= centre_ciou <= limit
    else:
        ok = _box_sums(sounders.integral, w, h, size) <= DISTRACTOR_UNDER_SOUNDER * area
        ok &= _box_sums(distractors.integral, w, h, size) <= DISTRACTOR_OVERLAP * area
    free = np.flatnonzero(ok)
    if free.size == 0:
        return None
    j, i = np.unravel_index(int(free[rng.integers(free.size)]), ok.shape)
    return MARGIN + int(i), MARGIN + int(j)


class NoPlace(Exception):
    """This layout has no free place left for a box: the scene is drawn again (``scene.py``)."""


def place_shrinking(rng: np.random.Generator, area: float, size: int, *, sounders: Occupancy,
                    distractors: Occupancy, sounding: bool, overlap: float = SOUNDER_OVERLAP
                    ) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of a box of about ``area``, shrunk until it finds a free place; NoPlace
    when even the shrunk box has none (the boxes placed before it took the room)."""
    for _ in range(MAX_SHRINKS):
        w, h = box_size(rng, area, size)
        pos = place(rng, w, h, size, sounders=sounders, distractors=distractors,
                    sounding=sounding, overlap=overlap)
        if pos is not None:
            return pos[0], pos[1], w, h
        area *= SHRINK
    raise NoPlace(f"no free place for a box of area {area:.3f} in a {size}px frame")


