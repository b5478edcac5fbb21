"""Object masks and textures, drawn to fill their box exactly.

Every shape touches all four edges of its ``w x h`` box, so the annotated box (the box the object
was drawn in) is also the tight box of its pixels. Masks are hard-edged (no anti-aliasing): the
pixel extent is then exact, and H.264 softens the edges anyway.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from pipeline.synth.categories import Category

# Polygons in the unit square; each reaches 0 and 1 on both axes.
_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "triangle": [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)],
    "diamond": [(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)],
    "hexagon": [(0.25, 0.0), (0.75, 0.0), (1.0, 0.5), (0.75, 1.0), (0.25, 1.0), (0.0, 0.5)],
    "cross": [(1 / 3, 0.0), (2 / 3, 0.0), (2 / 3, 1 / 3), (1.0, 1 / 3), (1.0, 2 / 3),
              (2 / 3, 2 / 3), (2 / 3, 1.0), (1 / 3, 1.0), (1 / 3, 2 / 3), (0.0, 2 / 3),
              (0.0, 1 / 3), (1 / 3, 1 / 3)],
}


def _regular_star(points: int, inner: float) -> list[tuple[float, float]]:
    """A star (inner < 1) or regular polygon (inner == 1), point up, stretched to the unit box."""
    verts = []
    step = 1 if inner == 1.0 else 2
    for i in range(points * step):
        r = 1.0 if i % 2 == 0 or step == 1 else inner
        a = -math.pi / 2 + i * math.pi * 2 / (points * step)
        verts.append((r * math.cos(a), r * math.sin(a)))
    xs, ys = [v[0] for v in verts], [v[1] for v in verts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return [((x - x0) / (x1 - x0), (y - y0) / (y1 - y0)) for x, y in verts]


_POLYGONS["star"] = _regular_star(5, 0.45)
_POLYGONS["pentagon"] = _regular_star(5, 1.0)

SHAPES = ("circle", "square", "ring", "semicircle", *_POLYGONS)


@lru_cache(maxsize=64)
def shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    """Boolean ``(h, w)`` mask of ``shape`` filling a ``w x h`` box (read-only, cached)."""
    img = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(img)
    box = (0, 0, w - 1, h - 1)
    if shape == "square":
        draw.rectangle(box, fill=1)
    elif shape == "circle":
        draw.ellipse(box, fill=1)
    elif shape == "ring":
        draw.ellipse(box, fill=1)
        # The hole shows the background: a ring is "a circle you can see through".
        dx, dy = round(w * 0.27), round(h * 0.27)
        draw.ellipse((dx, dy, w - 1 - dx, h - 1 - dy), fill=0)
    elif shape == "semicircle":
        # The upper half of an ellipse twice as tall as the box: flat side on the bottom edge.
        draw.pieslice((0, 0, w - 1, 2 * h - 1), 180, 360, fill=1)
    elif shape in _POLYGONS:
        draw.polygon([(x * (w - 1), y * (h - 1)) for x, y in _POLYGONS[shape]], fill=1)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    mask = np.array(img, dtype=bool)
    mask.setflags(write=False)
    return mask


@lru_cache(maxsize=64)
def object_sprite(category: Category, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask ``(h, w)`` bool, colours ``(h, w, 3)`` uint8) of one object of ``category``.

    Two-tone textures are laid out so the primary colour reaches all four edges (odd numbers of
    stripes and checker cells, primary first), which keeps the primary colour's tight box equal
    to the object's box.
    """
    mask = shape_mask(category.shape, w, h)
    rgb = np.empty((h, w, 3), dtype=np.uint8)
    rgb[:] = category.colour
    if category.texture == "stripes":
        band = (np.arange(w) * 7 // w) % 2 == 1  # 7 vertical stripes
        rgb[:, band] = category.secondary
    elif category.texture == "checker":
        cells = ((np.arange(h)[:, None] * 5 // h) + (np.arange(w)[None, :] * 5 // w)) % 2 == 1
        rgb[cells] = category.secondary
    elif category.texture != "flat":
        raise ValueError(f"unknown texture {category.texture!r}")
    rgb.setflags(write=False)
    return mask, rgb
