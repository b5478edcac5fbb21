"""Layouts of the varied benchmark (``data.synth.version: 2``): nothing but the sound tells
which object is the sounder.

Version 1 places the sounder first, at full size, and draws it last: a distractor is the one
that may be shrunk (no room left) or partly hidden (99% of version 1's distractors have part of
their box under another object). A network can learn "the whole, largest object" from a handful
of labels without listening, which is exactly the shortcut a labels-are-scarce benchmark must
not offer. Here every object of a scene, sounding or silent, is treated alike:

- every object's area comes from the same distribution (``placement.sounder_area``);
- objects are placed in a random order, each with the sounders' rule (away from the frame's
  centre, so the centre prior selects none of them), so which one had to shrink says nothing;
- boxes overlap by at most ``data.synth.overlap`` of their area, and the drawing order is
  random, so a partly hidden object is as likely to be the sounder as not (the sounder's box is
  what was drawn, hidden part included, as annotators box a partly hidden object).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.config import SynthConfig
from pipeline.synth import placement, varied


def place_objects(cfg: SynthConfig, areas: list[float], rng: np.random.Generator
                  ) -> list[tuple[int, int, int, int]]:
    """``(x, y, w, h)`` for each of ``areas``, placed in a random order under the same rules;
    ``placement.NoPlace`` when one has no room (the scene is drawn again)."""
    size = cfg.frame_size
    taken, unused = placement.Occupancy(size), placement.Occupancy(size)
    boxes: list[tuple[int, int, int, int] | None] = [None] * len(areas)
    for k in rng.permutation(len(areas)):
        boxes[k] = placement.place_shrinking(rng, areas[k], size, sounders=taken,
                                             distractors=unused, sounding=True,
                                             overlap=cfg.overlap)
        taken.add(*boxes[k])
    return boxes  # type: ignore[return-value]


def with_looks(cfg: SynthConfig, objects: list, n_sound: int, rng: np.random.Generator
               ) -> list:
    """A look per object (the first ``n_sound`` objects are the sounders); a silent object
    wears the first sounder's colour with probability ``look_share``; then the drawing order
    is shuffled."""
    out, first = [], None
    for k, obj in enumerate(objects):
        share = k >= n_sound and first is not None and rng.random() < cfg.look_share
        look = varied.sample_look(rng, varied.CATEGORIES[obj.category], cfg.looks,
                                  cfg.rotation, cfg.hue_spread, first if share else None)
        if k < n_sound and first is None:
            first = look
        out.append(dataclasses.replace(obj, look=look))
    return [out[k] for k in rng.permutation(len(out))]
