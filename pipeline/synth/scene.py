"""Scenes: which objects, where, how they drift, and how a frame of them is drawn.

A scene is a pure function of ``(cfg, index)``: the random streams are seeded with
``(cfg.seed, stream, index)``, so any process can rebuild clip ``index`` without the others,
and parallel generation writes exactly what a serial run would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from pipeline.config import ConfigError, SynthConfig
from pipeline.synth import placement, varied, varied_layout
from pipeline.synth.categories import categories_of
from pipeline.synth.shapes import object_sprite

# Independent random streams per clip (and one for the split), so changing how one thing is
# drawn never reshuffles the others.
STREAM_LAYOUT, STREAM_BACKGROUND, STREAM_AUDIO, STREAM_SPLIT = 0, 1, 2, 3


def clip_id(index: int) -> str:
    return f"synth_{index:06d}"


def num_frames(cfg: SynthConfig) -> int:
    return max(1, round(cfg.duration * cfg.fps))


def middle_frame(cfg: SynthConfig) -> int:
    """The annotated frame: frame n // 2, the one preprocessing stores (the frame shown at
    the middle of the video)."""
    return num_frames(cfg) // 2


def clip_rng(cfg: SynthConfig, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, stream, index])


@dataclass(frozen=True)
class SceneObject:
    """One object: its category, its box at the middle frame (pixels) and its drift."""

    category: int  # index into categories(cfg.categories)
    x: int
    y: int
    w: int
    h: int
    vx: float  # drift in pixels per second
    vy: float
    sounding: bool
    look: varied.Look | None = None  # version 2: this object's colours, texture and pose

    def position(self, frame: int, middle: int, fps: float, size: int) -> tuple[int, int]:
        """Top-left corner at ``frame``; objects stop at the frame's edge rather than leave it."""
        dt = (frame - middle) / fps
        x = min(max(round(self.x + self.vx * dt), 0), size - self.w)
        y = min(max(round(self.y + self.vy * dt), 0), size - self.h)
        return x, y

    def box(self, size: int) -> list[float]:
        """Normalised ``[xmin, ymin, xmax, ymax]`` at the middle frame (end exclusive)."""
        return [_norm(self.x, size), _norm(self.y, size),
                _norm(self.x + self.w, size), _norm(self.y + self.h, size)]


def _norm(px: int, size: int) -> float:
    """``px / size``, nudged up where needed so that ``int(v * size) == px`` holds.

    The field's evaluation truncates ``coord * 224`` to an int; plain ``61 / 224 * 224`` is
    60.999..., which would move the box edge by a pixel.
    """
    v = px / size
    while int(v * size) < px:
        v = math.nextafter(v, math.inf)
    return v


@dataclass(frozen=True)
class Scene:
    """Everything needed to draw clip ``index``; objects are in drawing order (sounders last)."""

    index: int
    objects: tuple[SceneObject, ...]
    offscreen: int | None = None  # version 2: the category heard from off-screen (no sounder)

    @property
    def id(self) -> str:
        return clip_id(self.index)

    @property
    def sounders(self) -> tuple[SceneObject, ...]:
        return tuple(o for o in self.objects if o.sounding)

    @property
    def heard(self) -> tuple[int, ...]:
        """The categories in the soundtrack: the sounders', or the off-screen one."""
        if self.offscreen is not None:
            return (self.offscreen,)
        return tuple(o.category for o in self.sounders)


MAX_REDRAWS = 50  # a layout whose boxes do not fit is drawn again, this many times at most


def sample_scene(cfg: SynthConfig, index: int) -> Scene:
    """Sample the layout of clip ``index``: categories, boxes, drifts (no pixels drawn).

    A layout whose boxes leave no room for the next one (about 1 in 7,000 with the defaults) is
    drawn again from the next seeded stream, so every seed works and stays deterministic; only
    settings that fail every redraw are a config error."""
    for attempt in range(MAX_REDRAWS):
        rng = clip_rng(cfg, STREAM_LAYOUT, index) if attempt == 0 else \
            np.random.default_rng([cfg.seed, STREAM_LAYOUT, index, attempt])
        try:
            return _layout(cfg, index, rng)
        except placement.NoPlace as exc:
            last = exc
    raise ConfigError(f"data.synth.area_max: {last} after {MAX_REDRAWS} layouts of clip "
                      f"{index}; lower data.synth.area_max or data.synth.distractors_max")


def _layout(cfg: SynthConfig, index: int, rng: np.random.Generator) -> Scene:
    size = cfg.frame_size
    n_sound = 2 if rng.random() < cfg.two_sounding else 1
    n_distract = int(rng.integers(cfg.distractors_min, cfg.distractors_max + 1))
    cats = rng.choice(cfg.categories, size=n_sound + n_distract, replace=False)
    offscreen = None
    if cfg.version == 2 and cfg.offscreen and index in unlabeled_indices(cfg) \
            and rng.random() < cfg.offscreen:
        # heard from off-screen: every object shown is silent, the heard category is not shown
        hidden = np.setdiff1d(np.arange(cfg.categories), cats)
        offscreen, n_sound = int(rng.choice(hidden)), 0
        n_distract = len(cats)

    if cfg.version == 2:
        return _varied_scene(cfg, index, cats, n_sound, offscreen, rng)
    sounders, distractors = placement.Occupancy(size), placement.Occupancy(size)
    boxes = []
    for k in range(n_sound + n_distract):
        sounding = k < n_sound
        if sounding:
            # With two sounders each gets half an area, so their union stays in range.
            area = placement.sounder_area(rng, cfg.area_min, cfg.area_max) / n_sound
        else:
            # Distractors come from the same sizes (so size alone does not give the sounder
            # away) and shrink when the frame has no room for them.
            area = placement.sounder_area(rng, cfg.area_min, cfg.area_max)
        x, y, w, h = placement.place_shrinking(rng, area, size, sounders=sounders,
                                               distractors=distractors, sounding=sounding)
        (sounders if sounding else distractors).add(x, y, w, h)
        boxes.append(_drifting(cfg, int(cats[k]), (x, y, w, h), sounding, rng))
    # Sounders are drawn last, so nothing ever hides part of a sounding object.
    return Scene(index, tuple(boxes[n_sound:] + boxes[:n_sound]), offscreen)


def _drifting(cfg: SynthConfig, category: int, box: tuple[int, int, int, int], sounding: bool,
              rng: np.random.Generator) -> SceneObject:
    angle = rng.uniform(0, 2 * np.pi)
    speed = cfg.motion * cfg.frame_size
    return SceneObject(category, *box, float(speed * np.cos(angle)),
                       float(speed * np.sin(angle)), sounding)


def _varied_scene(cfg: SynthConfig, index: int, cats: np.ndarray, n_sound: int,
                  offscreen: int | None, rng: np.random.Generator) -> Scene:
    """Version 2: every object placed and drawn alike (``varied_layout``)."""
    areas = [placement.sounder_area(rng, cfg.area_min, cfg.area_max) / max(n_sound, 1)
             if k < n_sound else placement.sounder_area(rng, cfg.area_min, cfg.area_max)
             for k in range(len(cats))]
    boxes = varied_layout.place_objects(cfg, areas, rng)
    objects = [_drifting(cfg, int(c), b, k < n_sound, rng)
               for k, (c, b) in enumerate(zip(cats, boxes, strict=True))]
    return Scene(index, tuple(varied_layout.with_looks(cfg, objects, n_sound, rng)), offscreen)


@lru_cache(maxsize=16)
def _split_order(seed: int, clips: int) -> tuple[int, ...]:
    return tuple(int(i) for i in np.random.default_rng([seed, STREAM_SPLIT]).permutation(clips))


def split_order(cfg: SynthConfig) -> tuple[int, ...]:
    """The seeded order of the clip indices: the first ``labeled`` are labeled, the next ``test``
    test, the rest unlabeled (``annotations.split_ids``)."""
    return _split_order(cfg.seed, cfg.clips)


def unlabeled_indices(cfg: SynthConfig) -> frozenset[int]:
    return frozenset(split_order(cfg)[cfg.labeled + cfg.test:])


def background(cfg: SynthConfig, index: int) -> np.ndarray:
    """A static, low-saturation textured background ``(size, size, 3)`` uint8.

    Smooth blotches, a faint oriented grating and fine grain, kept within grey levels ~70..170
    so that the saturated object colours always stand out from it. It is static because
    per-frame noise would dominate the H.264 bit rate and encoding time.
    """
    rng = clip_rng(cfg, STREAM_BACKGROUND, index)
    size = cfg.frame_size
    base = rng.uniform(100, 140) + rng.normal(0, 6, size=3)  # grey with a slight tint
    coarse = rng.uniform(-22, 22, size=(6, 6)).astype(np.float32)
    blotches = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size),
                                                                     Image.Resampling.BICUBIC))
    yy, xx = np.mgrid[0:size, 0:size]
    theta, period = rng.uniform(0, np.pi), rng.uniform(6, 18)
    grating = 5 * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period)
    grain = rng.normal(0, 5, size=(size, size))
    img = base[None, None, :] + (blotches + grating + grain)[:, :, None]
    return np.clip(img, 70, 170).astype(np.uint8)


def render_frames(cfg: SynthConfig, scene: Scene) -> Iterator[np.ndarray]:
    """The clip's RGB frames ``(size, size, 3)`` uint8, first to last."""
    cats = categories_of(cfg)
    size, mid = cfg.frame_size, middle_frame(cfg)
    bg = background(cfg, scene.index)
    sprites = [object_sprite(cats[o.category], o.w, o.h) if o.look is None
               else varied.sprite(cats[o.category].shape, o.look, o.w, o.h)
               for o in scene.objects]
    for i in range(num_frames(cfg)):
        frame = bg.copy()
        for obj, (mask, rgb) in zip(scene.objects, sprites, strict=True):
            x, y = obj.position(i, mid, cfg.fps, size)
            region = frame[y:y + obj.h, x:x + obj.w]
            np.copyto(region, rgb, where=mask[:, :, None])
        yield frame
