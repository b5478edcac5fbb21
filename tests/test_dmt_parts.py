"""Dual Mean-Teacher's pieces by hand: EMA, noise filter, IPL, pseudo-label statistics, losses
and augmentation, on tensors small enough to check on paper (the steps: test_dmt.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from pipeline.config import DMTConfig
from pipeline.dmt import (
    Targets,
    binarize,
    consensus_iou,
    ema_update,
    intersect,
    make_pseudo_labels,
    map_bce,
    mask_audio_input,
    noise_filter,
    photometric,
    pseudo_label_stats,
    random_crop,
    strong_frames,
    strong_views,
)
from tests.dmt_helpers import NO_AUG, Wrapper

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ----------------------------------------------------------------------------- EMA

def bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2)
    net[1].num_batches_tracked.fill_(seed + 1)
    return net


def test_ema_alpha_0_copies_1_keeps_half_is_midpoint():
    student = bn_net(1)
    for alpha, expect in ((0.0, "student"), (1.0, "teacher"), (0.5, "mid")):
        teacher = bn_net(2)
        before = copy.deepcopy(teacher.state_dict())
        ema_update(teacher, Wrapper(student), alpha)  # DDP-style wrapper is unwrapped
        after, s = teacher.state_dict(), student.state_dict()
        for k in before:
            if k.endswith("num_batches_tracked"):
                assert after[k] == s[k]  # integer buffers are copied
            elif expect == "student":
                assert torch.equal(after[k], s[k])
            elif expect == "teacher":
                assert torch.equal(after[k], before[k])
            else:
                assert torch.allclose(after[k], (before[k] + s[k]) / 2, atol=1e-6)
    assert not any(p.requires_grad and p.grad is not None for p in teacher.parameters())
    with pytest.raises(ValueError):
        ema_update(teacher, student, 1.5)


# ----------------------------------------------------------------------------- NF and IPL

def test_binarize_consensus_iou_and_noise_filter():
    p = torch.tensor([[[0.2, 0.5], [0.7, 0.49]]])
    assert binarize(p, 0.5).tolist() == [[[False, True], [True, False]]]
    a = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]]).bool().view(4, 2, 2)
    b = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]]).bool().view(4, 2, 2)
    iou = consensus_iou(a, b)
    assert iou.tolist() == [2 / 3, 0.0, 0.0, 1.0]  # two empty maps: 0 by definition
    assert noise_filter(iou, 2 / 3).tolist() == [True, False, False, True]  # equality keeps
    assert noise_filter(torch.tensor([0.5, 0.5 - 1e-9], dtype=torch.float64), 0.5).tolist() == \
        [True, False]
    # 7/10 against tau 0.7: float64 keeps the equality exact
    seven = torch.zeros(1, 1, 10, dtype=torch.bool)
    seven[..., :7] = True
    assert noise_filter(consensus_iou(seven, torch.ones_like(seven)), 0.7).tolist() == [True]


def test_ipl_is_logical_and():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 5, 5, generator=g) > 0.5, torch.rand(3, 5, 5, generator=g) > 0.4
    assert torch.equal(intersect(a, b), a & b)


def test_make_pseudo_labels_switches():
    pa = torch.zeros(2, 4, 4)
    pb = torch.zeros(2, 4, 4)
    pa[0, :2] = 1.0
    pb[0, :1] = 1.0  # sample 0: IoU 4/8 = 0.5
    pa[1, :, :1] = 1.0
    pb[1, :, 3:] = 1.0  # sample 1: disjoint, IoU 0
    cfg = DMTConfig(delta=0.5, tau=0.5)
    label, keep, iou = make_pseudo_labels([pa, pb], cfg)
    assert keep.tolist() == [True, False] and iou.tolist() == [0.5, 0.0]
    assert torch.equal(label, (pa >= 0.5) & (pb >= 0.5))
    label, keep, _ = make_pseudo_labels([pa, pb], DMTConfig(noise_filtering=False))
    assert keep.tolist() == [True, True]  # NF off keeps all
    label, _, _ = make_pseudo_labels([pa, pb], DMTConfig(ipl=False))
    assert torch.equal(label, pa >= 0.5)  # IPL off: teacher A's map
    label, keep, iou = make_pseudo_labels([pa], cfg)
    assert iou is None and keep.all() and torch.equal(label, pa >= 0.5)


def test_pseudo_label_stats_by_hand():
    label = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]]).bool().view(3, 2, 2)
    truth = torch.tensor([[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]).float().view(3, 2, 2)
    keep = torch.tensor([True, False, True])
    iou = torch.tensor([0.2, 0.4, 0.6], dtype=torch.float64)
    s = pseudo_label_stats(label, keep, iou, truth, torch.tensor([True, True, False]))
    assert (s["kept"], s["filtered"]) == (2.0, 1.0)
    assert s["consensus_iou"] == pytest.approx(0.4)
    assert s["pseudo_area"] == pytest.approx(6 / 8)  # kept samples 0 and 2: 2 + 4 of 8 pixels
    assert s["pseudo_iou_all"] == pytest.approx(0.75)  # rows with boxes: IoU 0.5 and 1.0
    assert s["pseudo_iou_kept"] == pytest.approx(0.5)  # kept rows with boxes: sample 0
    assert s["area_ratio_kept"] == pytest.approx(2.0)  # sample 0: 2 label pixels, 1 box pixel
    # good pseudo-labels (IoU >= 0.5) among rows with boxes: samples 0 and 1 (IoU 0.5, 1.0)
    assert (s["pseudo_good_all"], s["pseudo_good_kept"]) == (1.0, 1.0)
    assert math.isnan(s["consensus_auroc"])  # no bad one among the rows with boxes to rank
    all_rows = pseudo_label_stats(label, keep, iou, truth)  # sample 2 (IoU 0) is bad
    assert all_rows["pseudo_good_all"] == pytest.approx(2 / 3)
    assert all_rows["pseudo_good_kept"] == pytest.approx(1 / 2)
    # consensus 0.2, 0.4 (good) against 0.6 (bad): the filter ranks them the wrong way round
    assert all_rows["consensus_auroc"] == 0.0
    none = pseudo_label_stats(label, torch.zeros(3, dtype=torch.bool), None, None)
    assert math.isnan(none["pseudo_area"]) and math.isnan(none["consensus_iou"])
    assert "pseudo_iou_all" not in none


# ----------------------------------------------------------------------------- losses, augmentation

def test_map_bce_values_and_weights():
    pred = torch.full((2, 3, 3), 0.5, requires_grad=True)
    target = torch.zeros(2, 3, 3)
    target[1] = 1.0
    assert float(map_bce(pred, target).detach()) == pytest.approx(math.log(2), rel=1e-5)
    pred2 = torch.stack([torch.full((3, 3), 0.5), torch.full((3, 3), 0.9)])
    keep = torch.tensor([False, True])
    assert float(map_bce(pred2, target, keep)) == pytest.approx(-math.log(0.9), rel=1e-5)
    zero = map_bce(pred, target, torch.zeros(2, dtype=torch.bool))
    assert float(zero.detach()) == 0.0
    zero.backward()  # still part of the graph, with zero gradient
    assert pred.grad.abs().sum() == 0
    g = torch.Generator().manual_seed(0)
    soft_p, soft_t = torch.rand(2, 5, 5, generator=g), torch.rand(2, 5, 5, generator=g)
    ref = torch.nn.functional.binary_cross_entropy(soft_p.clamp(1e-6, 1 - 1e-6), soft_t)
    assert torch.allclose(map_bce(soft_p, soft_t), ref, atol=1e-6)  # soft targets (Flickr 0.5)
    exact = torch.zeros(1, 2, 2)  # a min-max map has exact 0s and 1s: clamped, finite
    assert torch.isfinite(map_bce(exact, torch.ones(1, 2, 2)))


def test_flip_moves_label_maps_with_frames():
    frames = torch.zeros(4, 3, 8, 8)
    frames[..., :4] = 1.0  # left half bright
    maps = torch.zeros(4, 224, 224)
    maps[..., :112] = 1.0  # left half labelled
    cfg = DMTConfig(**{**NO_AUG, "flip_prob": 0.5})
    out, (m,) = strong_frames(frames, [maps], cfg, torch.Generator().manual_seed(1))
    flipped = out[:, 0, 0, -1] == 1.0
    assert 0 < int(flipped.sum()) < 4  # this seed flips some samples, not all
    for i in range(4):
        assert bool(m[i, 0, -1] == 1.0) == bool(flipped[i])  # the map moved with its frame
        assert m[i].sum() == maps[i].sum()


def _crop_read_back(x: torch.Tensor) -> torch.Tensor:
    """(scale, x centre, y centre) per sample of a crop of the ramps x = column, y = row
    (channels / maps 0 and 1, values in [0, 1]), solved from two interior pixels of each:
    a ramp stays linear under the crop, value(j) = (s * (2 (j + 0.5) / n - 1) + t + 1) / 2."""
    n = x.shape[-1]
    j0, j1 = n // 4, 3 * n // 4
    xo = lambda j: 2 * (j + 0.5) / n - 1  # noqa: E731
    out = []
    for ramp, line in ((x[:, 0], lambda r, j: r[:, n // 2, j]),
                       (x[:, 1], lambda r, j: r[:, j, n // 2])):
        v0, v1 = 2 * line(ramp, j0) - 1, 2 * line(ramp, j1) - 1
        scale = (v1 - v0) / (xo(j1) - xo(j0))
        out += [scale, v0 - scale * xo(j0)]
    return torch.stack([out[0], out[1], out[3]], dim=1)


def test_crop_moves_label_maps_with_frames_and_stays_inside():
    def ramps(b: int, n: int) -> torch.Tensor:  # (b, 2, n, n): x ramp, y ramp
        r = (torch.arange(n) + 0.5) / n
        return torch.stack([r.expand(n, n), r[:, None].expand(n, n)]).expand(b, 2, n, n)

    b = 8
    frames = torch.cat([ramps(b, 32), torch.zeros(b, 1, 32, 32)], dim=1)  # (8, 3, 32, 32)
    maps = ramps(b, 224)
    out, m = random_crop(frames, [maps[:, 0], maps[:, 1], None], 0.5,
                         torch.Generator().manual_seed(3))
    assert out.shape == frames.shape and m[0].shape == (b, 224, 224) and m[2] is None
    got_frame, got_map = _crop_read_back(out), _crop_read_back(torch.stack(m[:2], dim=1))
    # the 32 px frame and the 224 px maps went through the same crop, sample by sample
    assert torch.allclose(got_frame, got_map, atol=1e-4)
    scale, centre = got_map[:, 0], got_map[:, 1:]
    assert ((scale >= 0.5 - 1e-4) & (scale <= 1 + 1e-4)).all() and scale.std() > 0.05
    assert (centre.abs() <= (1 - scale)[:, None] + 1e-4).all()  # the square stays inside
    # off: the identity, and no draw from the generator (the default run is unchanged)
    g = torch.Generator().manual_seed(3)
    ramp = maps[:, 0]
    same, (m0,) = random_crop(frames, [ramp], 1.0, g)
    assert same is frames and m0 is ramp
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(3).get_state())


def test_own_views_differ_per_student_and_shared_ones_do_not():
    frames = torch.zeros(6, 3, 8, 8)
    frames[..., :4] = 1.0  # left half bright
    maps = torch.zeros(6, 224, 224)
    maps[..., :112] = 1.0  # left half labelled
    targets = Targets(maps, 6, None, (1.0, 1.0, 1.0))
    for mode, differ in (("shared", False), ("own", True)):
        cfg = DMTConfig(**{**NO_AUG, "flip_prob": 0.5, "student_views": mode})
        views = strong_views(frames, targets, cfg, torch.Generator().manual_seed(2), 2)
        (fa, ta), (fb, tb) = views
        assert (not torch.equal(fa, fb)) is differ and (not torch.equal(ta.maps, tb.maps)) is differ
        for f, t in views:  # each student's maps moved with its own frames
            assert torch.equal(f[:, 0, 0, -1] == 1.0, t.maps[:, 0, -1] == 1.0)


def test_tau_quantile_raises_the_bar_to_the_batch_quantile():
    iou = torch.tensor([0.1, 0.3, 0.6, 0.9], dtype=torch.float64)
    # teacher maps of one 10-pixel row each: A marks all 10, B the first 10 * IoU of them
    a = torch.zeros(4, 1, 10, dtype=torch.bool)
    b = torch.zeros(4, 1, 10, dtype=torch.bool)
    a[:, 0, :] = True
    for i, v in enumerate(iou.tolist()):
        b[i, 0, :round(10 * v)] = True
    maps = [a.float(), b.float()]
    keep = lambda **kw: make_pseudo_labels(maps, DMTConfig(**kw))[1].tolist()  # noqa: E731
    assert keep(tau=0.0) == [True] * 4
    assert keep(tau=0.0, tau_quantile=0.5) == [False, False, True, True]  # median 0.45
    assert keep(tau=0.7, tau_quantile=0.5) == [False, False, False, True]  # tau is the floor
    assert keep(tau=0.5) == [False, False, True, True]


def test_photometric_identity_when_off_and_seedable():
    frames = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    off = DMTConfig(**NO_AUG)
    assert torch.allclose(photometric(frames, off, torch.Generator()), frames)
    on = DMTConfig(color_jitter=0.4, blur_prob=0.5, gray_prob=0.5)
    a = photometric(frames, on, torch.Generator().manual_seed(5))
    b = photometric(frames, on, torch.Generator().manual_seed(5))
    c = photometric(frames, on, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_audio_masks_fractions_and_waveform():
    x = torch.randn(6, 1, 64, 100) + 5
    before = x.clone()
    cfg = DMTConfig(time_mask=0.2, freq_mask=0.25)
    y = mask_audio_input(x, 3, 2, cfg, torch.Generator().manual_seed(0))
    changed = y != x
    assert changed.any() and torch.equal(x, before)  # a copy; the input is untouched
    full_cols = changed.all(dim=2).sum(dim=-1)  # time frames masked over all bins
    assert (full_cols <= 20).all()
    full_rows = changed.all(dim=3).sum(dim=-1)
    assert (full_rows <= 16).all()
    w = torch.randn(4, 1, 1000) + 3
    yw = mask_audio_input(w, 2, None, cfg, torch.Generator().manual_seed(0))
    assert ((yw == 0).sum(dim=-1) <= 200).all() and (yw == 0).any()  # silence, <= 20%
