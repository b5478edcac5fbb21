"""dmt synth version 2, the varied scenes: determinism, every category drawable, off-screen
clips without a box of their sound, placement that never fails."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import ConfigError, SynthConfig
from pipeline.config import load as load_config
from pipeline.synth.scene import sample_scene

CONFIGS = Path(__file__).resolve().parent.parent / "jobs" / "configs"

V2 = SynthConfig(version=2, categories=24, clips=200, labeled=20, test=20, offscreen=0.4,
                 seed=3)


def test_varied_scenes_are_deterministic_and_vary_within_a_category():
    from pipeline.synth.scene import render_frames

    a, b = sample_scene(V2, 5), sample_scene(V2, 5)
    assert a == b
    frame_a, frame_b = next(iter(render_frames(V2, a))), next(iter(render_frames(V2, b)))
    assert np.array_equal(frame_a, frame_b)
    looks: dict[int, set] = {}
    for i in range(200):
        for o in sample_scene(V2, i).objects:
            looks.setdefault(o.category, set()).add((o.look.colour, o.look.texture))
    assert len(looks) == 24 and min(len(v) for v in looks.values()) >= 5  # not one look each


def test_every_varied_category_is_drawable_filling_its_box():
    from pipeline.synth.varied import CATEGORIES, TEXTURES, Look, sprite

    assert len(CATEGORIES) == 24 and len({c.shape for c in CATEGORIES}) == 24
    pitches = [c.f0 for c in CATEGORIES]
    assert pitches == sorted(pitches) and min(np.diff(np.log2(pitches))) * 12 > 2.4
    angles = (-180, -135, -30, 0, 17, 45, 90, 170)  # data.synth.rotation reaches 180
    for cat in CATEGORIES:
        for k, angle in enumerate(angles):
            look = Look((200, 30, 30), (20, 20, 20), TEXTURES[k % 4], angle, k % 3 == 1)
            mask, rgb = sprite(cat.shape, look, 41, 33)
            ys, xs = np.nonzero(mask)
            assert (ys.min(), ys.max(), xs.min(), xs.max()) == (0, 32, 0, 40), (cat.name, angle)
            assert 0.2 < mask.mean() <= 1.0 and rgb.shape == (33, 41, 3), (cat.name, angle)


def test_offscreen_clips_are_unlabeled_and_carry_no_box_of_their_sound():
    from pipeline.synth.annotations import split_ids, vggss_entry

    splits = split_ids(V2)
    unlabeled = set(splits["unlabeled"])
    off = [s for s in (sample_scene(V2, i) for i in range(200)) if s.offscreen is not None]
    assert 0.25 < len(off) / len(unlabeled) < 0.55  # offscreen=0.4 of the unlabeled clips
    for s in off:
        assert s.id in unlabeled and not s.sounders
        assert s.offscreen not in {o.category for o in s.objects}  # not in the frame
        assert vggss_entry(V2, s)["bbox"] == [] and s.heard == (s.offscreen,)
    for i in range(200):
        s = sample_scene(V2, i)
        if s.id not in unlabeled:
            assert len(s.sounders) == 1 and vggss_entry(V2, s)["bbox"]


def test_varied_placement_never_fails_and_distractors_can_look_like_the_sounder():
    shared = 0
    for seed in range(200):
        cfg = SynthConfig(version=2, categories=24, seed=seed, look_share=1.0)
        for index in range(10):
            s = sample_scene(cfg, index)
            if s.sounders:
                colour = s.sounders[0].look.colour
                shared += sum(o.look.colour == colour for o in s.objects if not o.sounding)
    assert shared > 1000  # with look_share=1 every distractor of a shown sound wears its colour
    bench = load_config(str(CONFIGS / "bench.yaml"), []).data.synth  # the benchmark's scenes
    for seed in range(200):
        for index in range(5):
            sample_scene(replace(bench, seed=seed), index)
    with pytest.raises(ConfigError, match="version=2"):
        load_config(None, ["data.synth.categories=20"])


def test_varied_benchmark_files_and_audio(tmp_path):
    from pipeline.synth import generate

    cfg = SynthConfig(version=2, categories=20, clips=10, labeled=2, test=2, seed=4,
                      offscreen=1.0, duration=1.0, workers=1)
    summary = generate(cfg, tmp_path, progress=False)
    meta = json.loads((tmp_path / "meta.json").read_text())
    ann = {a["file"]: a for a in json.loads((tmp_path / "annotations.json").read_text())}
    off = [c for c in meta["clips"] if c["offscreen"]]
    assert off and all(c["split"] == "unlabeled" and ann[c["file"]]["bbox"] == [] for c in off)
    assert all("look" in o for c in meta["clips"] for o in c["objects"])
    assert len(summary["categories"]) == 20 and summary["baselines"]["oracle"]["ciou"] > 0.5
