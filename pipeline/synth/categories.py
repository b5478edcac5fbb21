"""The benchmark's object categories: a shape, a colour (or two-colour texture) and a timbre each.

Every category differs from every other in shape *and* colour, and in its sound in several ways
at once (fundamental pitch, harmonic content, rhythm), so that both "which object is this" and
"which object makes this sound" are learnable. The table is fixed: category ``k`` means the same
thing in every benchmark, whatever the seed; ``cfg.categories`` takes the first ``k`` rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pipeline.synth.varied import CATEGORIES as VARIED

RGB = tuple[int, int, int]

# Secondary colours of the two-tone textures. The background (see scene.py) stays inside grey
# levels 70..170 at low saturation, so neither these nor the saturated primaries are confused
# with it after H.264 compression.
WHITE: RGB = (245, 245, 245)
BLACK: RGB = (20, 20, 20)


@dataclass(frozen=True)
class Category:
    """One object class: how it looks and how it sounds."""

    name: str
    shape: str  # a key of pipeline.synth.shapes.SHAPES
    colour: RGB  # primary colour; touches all four edges of the object's box
    texture: str  # "flat", "stripes" (vertical) or "checker"
    secondary: RGB | None  # second colour of a two-tone texture
    f0: float  # fundamental frequency, Hz
    harmonics: int  # partials above the fundamental
    odd_only: bool  # only odd partials (a hollow, clarinet-like tone)
    rolloff: float  # partial k has amplitude k ** -rolloff (small: bright, large: dull)
    rhythm: str  # "tremolo" (smooth), "pulse" (gated beeps) or "pluck" (decaying strikes)
    rate: float  # rhythm rate, Hz
    vibrato: float  # relative depth of a 5 Hz pitch wobble

    def sound_description(self) -> str:
        partials = "odd partials" if self.odd_only else "all partials"
        vib = f", vibrato {self.vibrato:.0%}" if self.vibrato else ""
        return (f"{self.f0:.0f} Hz, {self.harmonics} overtones ({partials}, rolloff "
                f"{self.rolloff:g}), {self.rhythm} at {self.rate:g} Hz{vib}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sound"] = self.sound_description()
        return d


# Pitches are about 4 semitones apart (ratio ~1.26), far wider than one STFT bin of a 512-sample
# window at 16 kHz (31 Hz), and neighbours in pitch differ in rhythm and harmonic content too.
CATEGORIES: tuple[Category, ...] = (
    Category("red_circle", "circle", (220, 40, 40), "flat", None,
             180.0, 6, False, 1.0, "tremolo", 3.0, 0.0),
    Category("blue_square", "square", (40, 80, 220), "flat", None,
             227.0, 8, True, 0.8, "pulse", 4.0, 0.0),
    Category("green_triangle", "triangle", (40, 170, 60), "flat", None,
             286.0, 3, False, 1.5, "pluck", 2.5, 0.0),
    Category("yellow_diamond", "diamond", (240, 210, 40), "flat", None,
             360.0, 5, False, 0.7, "pulse", 6.0, 0.02),
    Category("magenta_star", "star", (210, 50, 200), "flat", None,
             454.0, 2, False, 2.0, "tremolo", 7.0, 0.03),
    Category("orange_cross", "cross", (245, 130, 20), "flat", None,
             572.0, 6, True, 1.0, "pluck", 5.0, 0.0),
    Category("cyan_ring", "ring", (40, 200, 210), "flat", None,
             720.0, 1, False, 2.0, "pulse", 2.0, 0.0),
    Category("purple_hexagon", "hexagon", (120, 50, 170), "flat", None,
             908.0, 4, False, 1.2, "tremolo", 1.5, 0.0),
    Category("pink_stripes", "square", (250, 140, 180), "stripes", WHITE,
             1144.0, 3, True, 1.0, "pluck", 3.5, 0.0),
    Category("lime_checker", "square", (160, 220, 60), "checker", BLACK,
             1441.0, 2, False, 1.5, "pulse", 8.0, 0.0),
    Category("brown_pentagon", "pentagon", (140, 80, 30), "flat", None,
             1816.0, 1, False, 1.0, "tremolo", 5.0, 0.015),
    Category("navy_semicircle", "semicircle", (30, 40, 120), "flat", None,
             2288.0, 2, True, 1.2, "pluck", 1.5, 0.0),
)


def categories(n: int) -> tuple[Category, ...]:
    """The first ``n`` categories of the fixed table (``2 <= n <= 12``)."""
    if not 1 <= n <= len(CATEGORIES):
        raise ValueError(f"categories: {n} outside 1..{len(CATEGORIES)}")
    return CATEGORIES[:n]


def categories_of(cfg) -> tuple:
    """The categories of a ``SynthConfig``: this table (version 1) or the varied table
    (version 2, ``pipeline.synth.varied``); each has ``name``, ``shape`` and ``to_dict()``."""
    if getattr(cfg, "version", 1) == 2:
        return VARIED[:cfg.categories]
    return categories(cfg.categories)
