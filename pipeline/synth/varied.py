"""The varied benchmark (``data.synth.version: 2``): categories whose members differ.

Version 1 gives each category one colour, one texture and one tone, so a few labeled clips pin
the whole mapping down and a supervised network on 3% of the labels scores like one on all of
them. Here a category is a **shape**, a **colour family** and a **sound family**, and each
object or clip draws its own member of them, so covering a category takes many examples:

- looks: each category has up to 3 **looks** (``data.synth.looks``), a colour and a texture
  (flat, or stripes, checker or dots in black or white); the 72 looks are all different, but
  every colour is worn by 6 looks of 6 categories, so neither colour nor texture alone names the
  category. Per object: one of its category's looks, its colour moved by up to
  ``data.synth.hue_spread`` degrees of hue and +-15% in saturation and brightness, a pose
  (rotation up to ``data.synth.rotation`` degrees, mirrored half the time) and a size. A few
  labeled clips show only some looks of a category; the unlabeled clips show all of them;
- sounds, per clip: the category's pitch band (2.5 semitones from its neighbours) moved by up
  to ``data.synth.pitch_spread`` semitones, its partials (one more or fewer), its brightness
  (rolloff +-0.25) and its rhythm (tremolo, pulse or pluck) at a rate varied by +-15%.
  Neighbours in pitch differ in rhythm and partials too, so a network whose pooling forgets
  where in the spectrum a sound sits can still tell them apart;
- silent distractors take the sounder's colour (their own texture) with probability
  ``data.synth.look_share``, so colour alone cannot tell the sounder;
- a fraction ``data.synth.offscreen`` of the **unlabeled** clips is heard from off-screen: the
  sound's category is not in the frame and the clip has no box (the noisy pairs noise filtering
  exists for). Labeled and test clips always show their sound.

Up to 24 categories (shapes of ``varied_shapes``, rotation-distinct at moderate angles; from
about 40 degrees a turned square is the diamond, which a frame holding both cannot tell apart).
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.synth.varied_shapes import SHAPES, posed_mask

RGB = tuple[int, int, int]
TEXTURES = ("flat", "stripes", "checker", "dots")
RHYTHMS = ("tremolo", "pulse", "pluck")
RATES = (2.0, 3.5, 5.0, 7.0)  # Hz
LOWEST_PITCH, BAND_SEMITONES = 110.0, 2.5
WHITE, BLACK = (245, 245, 245), (20, 20, 20)
# 12 colours far apart in hue or brightness (the background is low-saturation grey).
PALETTE: tuple[RGB, ...] = (
    (220, 40, 40), (245, 130, 20), (240, 210, 40), (160, 220, 60), (40, 170, 60),
    (40, 200, 210), (40, 80, 220), (30, 40, 120), (120, 50, 170), (210, 50, 200),
    (250, 140, 180), (140, 80, 30))
# (texture, second colour) of the looks
FINISHES: tuple[tuple[str, RGB], ...] = (
    ("flat", WHITE), ("stripes", BLACK), ("checker", WHITE), ("dots", BLACK),
    ("stripes", WHITE), ("checker", BLACK))
MAX_LOOKS = 3


@dataclass(frozen=True)
class VariedCategory:
    name: str
    shape: str
    looks: tuple[tuple[int, int], ...]  # (PALETTE index, FINISHES index) of each look
    f0: float  # centre of the pitch band, Hz
    partials: int
    odd_only: bool
    rolloff: float
    rhythm: str
    rate: float  # rhythm rate, Hz (varied per clip)

    def sound_description(self) -> str:
        kind = "odd" if self.odd_only else "all"
        return (f"band around {self.f0:.0f} Hz, about {self.partials} {kind} partials, "
                f"{self.rhythm} at about {self.rate:g} Hz")

    def to_dict(self) -> dict:
        return {**asdict(self), "sound": self.sound_description()}


def _looks(k: int) -> tuple[tuple[int, int], ...]:
    """Category ``k``'s looks: look ``m`` has colour ``(k + 5m) mod 12`` and finish
    ``k // 12 + 2m``, so for each ``m`` the 24 categories get 24 different looks and the
    finishes of different ``m`` never meet: all 72 differ."""
    return tuple(((k + 5 * m) % len(PALETTE), k // len(PALETTE) + 2 * m)
                 for m in range(MAX_LOOKS))


CATEGORIES: tuple[VariedCategory, ...] = tuple(
    VariedCategory(shape, shape, _looks(k),
                   round(LOWEST_PITCH * 2 ** (k * BAND_SEMITONES / 12), 1),
                   1 + (5 * k) % 7, k % 4 == 1, 0.8 + 0.4 * (k % 3),
                   RHYTHMS[k % 3], RATES[(k // 3) % 4])
    for k, shape in enumerate(SHAPES))


@dataclass(frozen=True)
class Look:
    """How one object is drawn: colours, texture and pose."""

    colour: RGB
    secondary: RGB
    texture: str
    angle: int  # degrees
    mirror: bool

    def to_dict(self) -> dict:
        return asdict(self)


def _jitter(rgb: RGB, rng: np.random.Generator, hue_spread: float) -> RGB:
    """``rgb`` with its hue moved by up to ``hue_spread`` degrees, saturation and brightness by
    up to 15%."""
    h, sat, val = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    h = (h + rng.uniform(-hue_spread, hue_spread) / 360.0) % 1.0
    sat = min(1.0, sat * rng.uniform(0.85, 1.15))
    val = min(1.0, val * rng.uniform(0.85, 1.15))
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, sat, val))  # type: ignore


def sample_look(rng: np.random.Generator, cat: VariedCategory, looks: int, rotation: float,
                hue_spread: float, colour_of: Look | None = None) -> Look:
    """A look of a ``cat`` object: one of its first ``looks`` looks, jittered and posed;
    ``colour_of``: wear that object's colour instead (a distractor like the sounder)."""
    colour_index, finish = cat.looks[int(rng.integers(looks))]
    texture, secondary = FINISHES[finish]
    colour = _jitter(PALETTE[colour_index], rng, hue_spread)
    angle = int(round(rng.uniform(-rotation, rotation)))
    mirror = bool(rng.random() < 0.5)
    if colour_of is not None:
        colour = colour_of.colour
    return Look(colour, secondary, texture, angle, mirror)


def sprite(shape: str, look: Look, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(mask ``(h, w)`` bool, colours ``(h, w, 3)`` uint8) of one object."""
    mask = posed_mask(shape, w, h, look.angle, look.mirror)
    rgb = np.empty((h, w, 3), dtype=np.uint8)
    rgb[:] = look.colour
    yy, xx = np.mgrid[0:h, 0:w]
    cell = max(3, min(w, h) // 6)
    if look.texture == "stripes":
        rgb[((xx + yy * (look.angle % 2)) // cell) % 2 == 1] = look.secondary
    elif look.texture == "checker":
        rgb[((xx // cell) + (yy // cell)) % 2 == 1] = look.secondary
    elif look.texture == "dots":
        cx, cy = (xx % (2 * cell)) - cell, (yy % (2 * cell)) - cell
        rgb[cx * cx + cy * cy <= (cell * 0.55) ** 2] = look.secondary
    rgb.setflags(write=False)
    return mask, rgb


# ---------------------------------------------------------------- sound

def _envelope(rhythm: str, rate: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    cycle = (rate * t + rng.random()) % 1.0
    if rhythm == "tremolo":
        return 0.65 + 0.35 * np.sin(2 * np.pi * cycle)
    if rhythm == "pulse":
        gate = np.convolve((cycle < 0.5).astype(np.float64), np.ones(80) / 80, mode="same")
        return 0.15 + 0.85 * gate
    strikes = np.convolve(np.exp(-cycle / 0.25), np.ones(80) / 80, mode="same")
    return 0.1 + 0.9 * strikes


def varied_sound(cat: VariedCategory, n: int, sr: int, rng: np.random.Generator,
                 pitch_spread: float) -> np.ndarray:
    """``n`` samples of one clip's sound of ``cat``, unit RMS: the category's pitch band,
    partials, brightness and rhythm, each moved a little for this clip."""
    t = np.arange(n) / sr
    f0 = cat.f0 * 2 ** (rng.uniform(-pitch_spread, pitch_spread) / 12)
    vibrato = rng.uniform(0.0, 0.015)
    freq = f0 * (1 + vibrato * np.sin(2 * np.pi * 5.0 * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    partials = max(1, cat.partials + int(rng.integers(-1, 2)))
    rolloff = cat.rolloff + rng.uniform(-0.25, 0.25)
    step = 2 if cat.odd_only else 1
    tone = np.zeros(n)
    for k in range(1, 1 + step * partials, step):
        if k * f0 * (1 + vibrato) >= 0.45 * sr:
            break
        tone += k ** -rolloff * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    sound = tone * _envelope(cat.rhythm, cat.rate * rng.uniform(0.85, 1.15), n, sr, rng)
    return sound / np.sqrt(np.mean(sound ** 2))
