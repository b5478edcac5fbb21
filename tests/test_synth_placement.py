"""Where `dmt synth` (version 1) puts its objects: placement that the field's median rule cannot
reward by position alone, and layouts that never fail to fit."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import metrics
from pipeline.config import ConfigError, SynthConfig
from pipeline.metrics import ciou, gt_map
from pipeline.synth.annotations import vggss_entry
from pipeline.synth.baselines import baseline_scores
from pipeline.synth.placement import centre_disc
from pipeline.synth.scene import sample_scene


def test_ciou_helper_matches_the_median_rule():
    box = [0.0, 0.0, 0.5, 0.6]  # 30% of the frame
    gt = gt_map([box])
    rng = np.random.default_rng(0)
    assert ciou(gt + 0.5 * rng.random(gt.shape), gt) == pytest.approx(0.6, abs=0.01)  # 2a
    assert ciou(np.zeros_like(gt), gt) == pytest.approx(0.3, abs=0.01)  # whole image: a
    # A centre-weighted map selects half the frame (a few more pixels tie on the circle) ...
    disc = centre_disc(224)
    assert 224 * 224 // 2 <= disc.sum() <= 224 * 224 // 2 + 32
    yy, xx = np.mgrid[0:224, 0:224]
    centre = -((xx - 111.5) ** 2 + (yy - 111.5) ** 2)
    assert np.array_equal(centre >= np.sort(centre.ravel())[224 * 224 // 2], disc)
    # ... so it passes a centred box and fails the same box in a corner.
    assert ciou(centre, gt_map([[0.2, 0.2, 0.8, 0.8]])) >= 0.5
    assert ciou(centre, gt) < 0.5


def test_placement_beats_the_centre_prior_and_keeps_the_oracle_ceiling():
    cfg = SynthConfig()
    scenes = [sample_scene(cfg, i) for i in range(200)]
    scores = baseline_scores([vggss_entry(cfg, s) for s in scenes])
    assert scores["oracle"]["ciou"] >= 0.8
    assert scores["centre"]["ciou"] <= 0.25
    assert scores["whole"]["ciou"] == 0.0
    for s in scenes:
        (sounder,) = s.sounders
        assert s.objects[-1] is sounder  # drawn last: nothing covers it
        assert cfg.area_min - 0.01 <= sounder.w * sounder.h / 224 ** 2 <= cfg.area_max + 0.01


def test_layout_baselines_are_the_metric_of_the_trivial_predictors():
    """The synth summary's baselines are pipeline.metrics applied to its predictors' maps."""
    cfg = SynthConfig()
    entries = [vggss_entry(cfg, sample_scene(cfg, i)) for i in range(40)]
    gts = np.stack([gt_map(e["bbox"]) for e in entries])
    scores = baseline_scores(entries)
    expect = {"oracle": np.stack([metrics.oracle_map(g) for g in gts]),
              "centre": np.broadcast_to(metrics.centre_box_map(), gts.shape),
              "whole": np.broadcast_to(metrics.whole_image_map(), gts.shape)}
    for name, maps in expect.items():
        ref = metrics.evaluate_maps(maps, gts)
        assert scores[name] == {k: ref[k] for k in ("ciou", "auc", "mean_ciou")}, name
    assert 0.0 < scores["centre"]["mean_ciou"] < scores["oracle"]["mean_ciou"]

def test_two_sounders_differ_and_do_not_overlap():
    cfg = SynthConfig(two_sounding=1.0, distractors_max=1)
    for i in range(20):
        a, b = sample_scene(cfg, i).sounders
        assert a.category != b.category
        assert (min(a.x + a.w, b.x + b.w) <= max(a.x, b.x)
                or min(a.y + a.h, b.y + b.h) <= max(a.y, b.y))


def test_a_layout_that_does_not_fit_is_drawn_again():
    """These seeds' clips once stopped `dmt synth` (`no free place for a box`); a layout whose
    boxes leave no room is now drawn again from the next seeded stream: deterministic, valid."""
    once_failing = [(31337, 141), (7, 185), (14, 64), (38, 28), (52, 344), (58, 37),
                    (76, 321), (99, 135), (110, 358), (135, 188), (141, 75), (179, 171),
                    (182, 328)]
    for seed, index in once_failing:
        cfg = SynthConfig(seed=seed)
        scene = sample_scene(cfg, index)
        assert scene == sample_scene(cfg, index) and len(scene.sounders) == 1
        (sounder,) = scene.sounders
        assert cfg.area_min - 0.01 <= sounder.w * sounder.h / 224 ** 2 <= cfg.area_max + 0.01
    for seed in range(200):  # and placement never fails on 200 seeds
        cfg = SynthConfig(seed=seed)
        for index in range(10):
            sample_scene(cfg, index)
    with pytest.raises(ConfigError, match="area_max"):  # what can never fit stays an error
        sample_scene(SynthConfig(area_min=0.9, area_max=0.95, distractors_min=2,
                                 distractors_max=2), 0)
