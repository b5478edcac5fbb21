"""The varied benchmark (``data.synth.version: 2``): categories whose members differ.

Version 1 gives each category one colour, one texture and one tone, so a few labeled clips pin
the whole mapping down and a supervised network on 3% of the labels scores like one on all of
them. Here a category is only its **shape** and its **sound family**; everything else varies
from clip to clip, so the mapping has to be learned from many examples (DMT.md: the labeled set
is small, the unlabeled one large):

- looks, per object: a random saturated colour, a texture (flat, stripes, checker or dots, in a
  second random colour, white or black), a pose (rotation up to ``data.synth.rotation``
  degrees, mirrored half the time) and a size (the placement rules of version 1);
- sounds, per clip: the category's pitch band (2.5 semitones apart from its neighbours) moved by
  up to ``data.synth.pitch_spread`` semitones, a random timbre (1-8 partials, odd-only or all,
  dull to bright), the category's rhythm (tremolo, pulse or pluck) at a rate varied by +-25%;
- silent distractors share the sounding object's colour and texture with probability
  ``data.synth.look_share``, so colour cannot tell the sounder;
- a fraction ``data.synth.offscreen`` of the **unlabeled** clips is heard from off-screen: the
  sound's category is not in the frame and the clip has no box (the noisy pairs noise filtering
  exists for). Labeled and test clips always show their sound.

Up to 24 categories (shapes of ``varied_shapes``, rotation-distinct at moderate angles).
"""

from __future__ import annotations

import colorsys
from dataclasses import asdict, dataclass

import numpy as np

from pipeline.synth.varied_shapes import SHAPES, posed_mask

RGB = tuple[int, int, int]
TEXTURES = ("flat", "stripes", "checker", "dots")
RHYTHMS = ("tremolo", "pulse", "pluck")
LOWEST_PITCH, BAND_SEMITONES = 110.0, 2.5


@dataclass(frozen=True)
class VariedCategory:
    name: str
    shape: str
    f0: float  # centre of the pitch band, Hz
    rhythm: str
    rate: float  # rhythm rate, Hz (varied per clip)

    def sound_description(self) -> str:
        return f"band around {self.f0:.0f} Hz, {self.rhythm} at about {self.rate:g} Hz"

    def to_dict(self) -> dict:
        return {**asdict(self), "sound": self.sound_description()}


CATEGORIES: tuple[VariedCategory, ...] = tuple(
    VariedCategory(shape, shape, round(LOWEST_PITCH * 2 ** (k * BAND_SEMITONES / 12), 1),
                   RHYTHMS[k % 3], (2.0, 3.5, 5.0, 7.0)[(k // 3) % 4])
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


def _colour(rng: np.random.Generator) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0))
    return int(255 * r), int(255 * g), int(255 * b)


def sample_look(rng: np.random.Generator, rotation: float, like: Look | None = None) -> Look:
    """A random look; ``like``: copy its colours and texture (a distractor that looks like the
    sounder), with a pose of its own."""
    angle = int(round(rng.uniform(-rotation, rotation)))
    mirror = bool(rng.random() < 0.5)
    if like is not None:
        return Look(like.colour, like.secondary, like.texture, angle, mirror)
    second = (rng.choice(3))
    secondary = ((245, 245, 245), (20, 20, 20), _colour(rng))[int(second)]
    texture = TEXTURES[int(rng.choice(len(TEXTURES), p=(0.4, 0.2, 0.2, 0.2)))]
    return Look(_colour(rng), secondary, texture, angle, mirror)


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
    """``n`` samples of one clip's sound of ``cat``, unit RMS: the category's pitch band and
    rhythm, everything else drawn for this clip."""
    t = np.arange(n) / sr
    f0 = cat.f0 * 2 ** (rng.uniform(-pitch_spread, pitch_spread) / 12)
    vibrato = rng.uniform(0.0, 0.02)
    freq = f0 * (1 + vibrato * np.sin(2 * np.pi * 5.0 * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    partials, odd, rolloff = int(rng.integers(1, 9)), bool(rng.random() < 0.4), \
        rng.uniform(0.5, 2.5)
    step = 2 if odd else 1
    tone = np.zeros(n)
    for k in range(1, 1 + step * partials, step):
        if k * f0 * (1 + vibrato) >= 0.45 * sr:
            break
        tone += k ** -rolloff * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    sound = tone * _envelope(cat.rhythm, cat.rate * rng.uniform(0.75, 1.25), n, sr, rng)
    return sound / np.sqrt(np.mean(sound ** 2))
