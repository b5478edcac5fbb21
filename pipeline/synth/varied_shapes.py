"""The shapes of the varied benchmark (``data.synth.version: 2``): 24 outlines, each drawn at
any rotation, mirrored or not, stretched to fill its box exactly.

A shape is an outer polygon and optional holes, in unit coordinates around the origin. Pose is
applied to the vertices (rotation, mirror), then the outline is normalised to its box, so the
object's pixels touch all four edges of the box at every pose: the annotated box stays the tight
box of the object. Holes show the background (a ring is a disc you can see through).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

Outline = list[tuple[float, float]]


def _regular(n: int, inner: float = 1.0, phase: float = -math.pi / 2) -> Outline:
    """A regular polygon (inner == 1) or star (inner < 1) of ``n`` points, radius 1."""
    step = 1 if inner == 1.0 else 2
    pts = []
    for i in range(n * step):
        r = 1.0 if step == 1 or i % 2 == 0 else inner
        a = phase + i * 2 * math.pi / (n * step)
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


def _circle(r: float = 1.0, cx: float = 0.0, cy: float = 0.0, n: int = 48) -> Outline:
    return [(cx + r * math.cos(2 * math.pi * i / n), cy + r * math.sin(2 * math.pi * i / n))
            for i in range(n)]


def _crescent(n: int = 24) -> Outline:
    """The outer circle's left arc (50 to 310 degrees), back along the left arc of an inner
    circle centred right of the middle: a polygon whose own extents are the shape's."""
    outer = [(math.cos(a), math.sin(a)) for a in np.linspace(math.radians(50),
                                                                 math.radians(310), n)]
    c, r = 0.55, 0.75
    start = math.atan2(outer[-1][1], outer[-1][0] - c)  # the 310-degree tip, seen from c
    end = math.atan2(outer[0][1], outer[0][0] - c) - 2 * math.pi  # the 50-degree tip
    inner = [(c + r * math.cos(a), r * math.sin(a)) for a in np.linspace(start, end, n)]
    return outer + inner[1:-1]


def _heart(n: int = 60) -> Outline:
    pts = []
    for i in range(n):
        t = 2 * math.pi * i / n
        pts.append((16 * math.sin(t) ** 3,
                    -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t)
                      - math.cos(4 * t))))
    return pts


# name -> (outer outline, holes)
SHAPES: dict[str, tuple[Outline, list[Outline]]] = {
    "circle": (_circle(), []),
    "square": ([(-1, -1), (1, -1), (1, 1), (-1, 1)], []),
    "triangle": (_regular(3), []),
    "diamond": ([(0, -1), (0.6, 0), (0, 1), (-0.6, 0)], []),
    "star": (_regular(5, 0.45), []),
    "cross": ([(-0.33, -1), (0.33, -1), (0.33, -0.33), (1, -0.33), (1, 0.33), (0.33, 0.33),
               (0.33, 1), (-0.33, 1), (-0.33, 0.33), (-1, 0.33), (-1, -0.33), (-0.33, -0.33)],
              []),
    "ring": (_circle(), [_circle(0.55)]),
    "hexagon": (_regular(6, phase=0.0), []),
    "pentagon": (_regular(5), []),
    "semicircle": ([(math.cos(math.pi * i / 24), -math.sin(math.pi * i / 24))
                    for i in range(25)], []),
    "octagon": (_regular(8, phase=math.pi / 8), []),
    "star6": (_regular(6, 0.55), []),
    "star4": (_regular(4, 0.3), []),
    "heart": (_heart(), []),
    "arrow": ([(-1, -0.3), (0.2, -0.3), (0.2, -0.8), (1, 0), (0.2, 0.8), (0.2, 0.3),
               (-1, 0.3)], []),
    "crescent": (_crescent(), []),
    "ell": ([(-1, -1), (-0.3, -1), (-0.3, 0.4), (1, 0.4), (1, 1), (-1, 1)], []),
    "tee": ([(-1, -1), (1, -1), (1, -0.4), (0.3, -0.4), (0.3, 1), (-0.3, 1), (-0.3, -0.4),
             (-1, -0.4)], []),
    "frame": ([(-1, -1), (1, -1), (1, 1), (-1, 1)], [[(-0.55, -0.55), (0.55, -0.55),
                                                      (0.55, 0.55), (-0.55, 0.55)]]),
    "bowtie": ([(-1, -1), (0, -0.25), (1, -1), (1, 1), (0, 0.25), (-1, 1)], []),
    "chevron": ([(-1, -1), (0, -0.1), (1, -1), (1, -0.2), (0, 0.7), (-1, -0.2)], []),
    "trapezoid": ([(-0.45, -1), (0.45, -1), (1, 1), (-1, 1)], []),
    "open_triangle": (_regular(3), [[(x * 0.45, y * 0.45 + 0.12) for x, y in _regular(3)]]),
    "plus": ([(-0.15, -1), (0.15, -1), (0.15, -0.15), (1, -0.15), (1, 0.15), (0.15, 0.15),
              (0.15, 1), (-0.15, 1), (-0.15, 0.15), (-1, 0.15), (-1, -0.15), (-0.15, -0.15)],
             []),
}


def _posed(points: Outline, angle: float, mirror: bool) -> np.ndarray:
    p = np.asarray(points, np.float64)
    if mirror:
        p = p * np.array([-1.0, 1.0])
    c, s = math.cos(angle), math.sin(angle)
    return p @ np.array([[c, s], [-s, c]])


@lru_cache(maxsize=512)
def posed_mask(shape: str, w: int, h: int, angle_deg: int, mirror: bool) -> np.ndarray:
    """Boolean ``(h, w)`` mask of ``shape`` at a pose, filling its ``w x h`` box (read-only)."""
    outer, holes = SHAPES[shape]
    angle = math.radians(angle_deg)
    o = _posed(outer, angle, mirror)
    lo, span = o.min(axis=0), np.maximum(o.max(axis=0) - o.min(axis=0), 1e-9)
    scale = np.array([w - 1, h - 1], np.float64)

    def to_box(points: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(v) for v in (points - lo) / span * scale]

    img = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(img)
    draw.polygon(to_box(o), fill=1)
    for hole in holes:
        draw.polygon(to_box(_posed(hole, angle, mirror)), fill=0)
    mask = np.array(img, dtype=bool)
    mask.setflags(write=False)
    return mask
