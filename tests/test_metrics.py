"""The evaluation metric, pinned by values worked out by hand (docs/method.md §8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline import metrics as M


def ramp4() -> np.ndarray:
    """4x4 prediction 0/15 .. 15/15 in raster order (no ties)."""
    return (np.arange(16, dtype=np.float64) / 15).reshape(4, 4)


# ----------------------------------------------------------------------------- cIoU

def test_ciou_median_index_is_size_half():
    # 16 pixels: thr = sorted[8] = 8/15, so infer = the last two rows (8 pixels).
    gt = np.zeros((4, 4))
    gt[2:4, 0:2] = 1  # 4 pixels, all inferred
    # inter 4 / (sum gt 4 + inferred background 4) = 0.5
    assert M.ciou(ramp4(), gt) == pytest.approx(0.5)


def test_ciou_ties_at_the_median_are_all_selected():
    # values: six 0s, six 0.5s, four 1s; sorted[8] = 0.5 so 10 pixels (>= half) are inferred.
    pred = np.array([0.0] * 6 + [0.5] * 6 + [1.0] * 4).reshape(4, 4)
    gt = np.zeros(16)
    gt[12:16] = 1  # the four 1s
    gt[0:2] = 1  # two of the 0s (missed)
    # inter 4 / (sum gt 6 + six inferred 0.5-pixels with gt 0) = 4 / 12
    assert M.ciou(pred, gt.reshape(4, 4)) == pytest.approx(1 / 3)


def test_ciou_flickr_half_pixels_count_half():
    pred = 1 - ramp4()  # top two rows inferred
    gt = np.zeros((4, 4))
    gt[0] = [1, 1, 0.5, 0.5]  # sum 3
    # inter 3 / (3 + the 4 inferred pixels of row 1, gt 0) = 3 / 7
    assert M.ciou(pred, gt) == pytest.approx(3 / 7)
    # fixed 0.9: pred >= 0.9 is pixels (0,0)=1 and (0,1)=14/15 -> inter 2 / (3 + 0)
    assert M.ciou(pred, gt, threshold=0.9) == pytest.approx(2 / 3)


def test_ciou_accepts_torch_and_degenerate_denominator():
    gt = np.zeros((4, 4))
    gt[2:4, 0:2] = 1
    assert M.ciou(torch.tensor(ramp4()), torch.tensor(gt)) == pytest.approx(0.5)
    # empty gt, nothing inferred at a fixed threshold: 0.0 (EZ-VSL would give NaN)
    assert M.ciou(np.zeros((4, 4)), np.zeros((4, 4)), threshold=0.5) == 0.0
    with pytest.raises(ValueError):
        M.ciou(np.zeros((4, 4)), np.zeros((3, 3)))


def test_field_size_median_is_224_squared_half():
    pred = np.arange(224 * 224, dtype=np.float64).reshape(224, 224)
    gt = np.ones((224, 224))
    # exactly 224*224 - 224*224//2 = 25088 pixels are >= sorted[25088]
    assert M.ciou(pred, gt) == pytest.approx(25088 / 50176)


# ----------------------------------------------------------------------------- gt maps

def test_gt_map_vggss_truncates_and_unions():
    m = M.gt_map([[0.1, 0.2, 0.5, 0.6]], "vggss")
    # 0.1*224 = 22.4 -> 22, 0.2*224 = 44.8 -> 44, 112, 0.6*224 = 134.4 -> 134
    assert m.shape == (224, 224) and m.dtype == np.float32
    assert m.sum() == (134 - 44) * (112 - 22)
    assert m[44, 22] == 1 and m[43, 22] == 0 and m[44, 21] == 0
    assert m[133, 111] == 1 and m[134, 111] == 0 and m[133, 112] == 0
    union = M.gt_map([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]], "vggss")
    assert union.max() == 1 and union.sum() == 2 * 112 * 112 - 56 * 56


def test_gt_map_vggss_clips_out_of_range_boxes():
    # vggss.json holds values such as -2.9e16; they clip to 0, values > 1 clip to 1.
    m = M.gt_map([[-2.9e16, 0.5, 0.25, 2.0]], "vggss")
    assert m.sum() == 56 * 112
    assert m[112:, :56].all() and not m[:112].any() and not m[:, 56:].any()
    assert M.gt_map([], "vggss").sum() == 0


def test_gt_map_flickr_consensus():
    # 256-grid boxes: 128 -> int(224*128/256) = 112, 64 -> 56, 200 -> 175, 100 -> int(87.5) = 87
    m = M.gt_map([[0, 0, 128, 128], [64, 64, 200, 200], [100, 100, 110, 110]], "flickr")
    assert m[0, 0] == 0.5  # one annotator
    assert m[60, 60] == 1.0  # two annotators
    assert m[90, 90] == 1.0  # three annotators: 1.5 clipped to 1
    assert m[150, 150] == 0.5 and m[174, 174] == 0.5 and m[175, 175] == 0.0
    assert m[111, 0] == 0.5 and m[112, 0] == 0.0
    assert m[87, 87] == 1.0 and m[86, 86] == 1.0
    with pytest.raises(ValueError):
        M.gt_map([[0, 0, 1, 1]], "coco")


# ----------------------------------------------------------------------------- summaries

def ezvsl_reference(cious):
    """EZ-VSL's Evaluator.finalize_* (sklearn.metrics.auc == numpy trapezoid)."""
    c = np.array(cious)
    fr = [np.sum(c >= 0.05 * i) / len(c) for i in range(21)]
    return np.mean(c >= 0.5), np.trapezoid(fr, [0.05 * i for i in range(21)]), np.mean(c)


def test_summarize_hand_list():
    s = M.summarize([0.0, 0.5, 1.0, 0.25])
    assert s["ciou"] == pytest.approx(0.5)
    assert s["mean_ciou"] == pytest.approx(0.4375)
    # frac: 1 at t=0; 0.75 on (0, .25]; 0.5 on (.25, .5]; 0.25 on (.5, 1]
    # 0.04375 + 0.15 + 0.03125 + 0.1 + 0.01875 + 0.1125
    assert s["auc"] == pytest.approx(0.45625)
    assert M.summarize([1.0] * 3)["auc"] == pytest.approx(1.0)
    assert M.summarize([0.0])["auc"] == pytest.approx(0.025)
    with pytest.raises(ValueError):
        M.summarize([])


def test_summarize_matches_ezvsl_reference():
    rng = np.random.default_rng(0)
    for cious in (rng.random(50), [0.15, 0.3, 0.45, 0.5], rng.random(7) ** 3):
        ap, auc, mean = ezvsl_reference(cious)
        s = M.summarize(cious)
        assert (s["ciou"], s["mean_ciou"]) == pytest.approx((ap, mean))
        assert s["auc"] == pytest.approx(auc, abs=1e-12)


def test_ciou_both_is_the_smaller_rule():
    # median rule: both samples >= 0.5 -> CIoU 1.0; fixed rule: one of two -> 0.5
    s = M.summarize_rules([0.6, 0.7], [0.6, 0.1])
    assert (s["ciou"], s["ciou_fixed"], s["ciou_both"]) == (1.0, 0.5, 0.5)
    assert M.summarize_rules([0.6, 0.1], [0.6, 0.7])["ciou_both"] == 0.5
    # a map high everywhere: ranks well (median rule) but its fixed-rule box is the frame
    assert M.summarize_rules([0.9, 0.8, 0.7], [0.2, 0.2, 0.2])["ciou_both"] == 0.0
    assert M.summarize_rules([0.5, 0.2], [0.2, 0.2]) == {
        **M.summarize([0.5, 0.2]), **{f"{k}_fixed": v for k, v in M.summarize([0.2, 0.2]).items()},
        "ciou_both": 0.0}


def test_map_mse_and_evaluate_maps():
    gt = np.zeros((4, 4))
    gt[:2, :2] = 1
    assert M.map_mse(np.zeros((4, 4)), gt) == pytest.approx(0.25)
    preds = np.stack([1 - ramp4(), ramp4()])
    gts = np.stack([gt, gt])
    out = M.evaluate_maps(preds, gts)
    # sample 0: top half inferred -> 4 / (4 + 4) = 0.5; sample 1: bottom half -> 0
    assert out["mean_ciou"] == pytest.approx(0.25) and out["ciou"] == pytest.approx(0.5)
    # fixed 0.5: sample 0 infers pixels 0..7 (values >= 8/15) -> same 0.5; sample 1 -> 0
    assert out["mean_ciou_fixed"] == pytest.approx(0.25)
    assert set(out) >= {"ciou", "auc", "mean_ciou", "ciou_fixed", "auc_fixed",
                        "mean_ciou_fixed", "ciou_both", "mse", "n"}
    assert out["n"] == 2
    with pytest.raises(ValueError):
        M.evaluate_maps(preds[0], gts[0])


# ----------------------------------------------------------------------------- trivial predictors

def test_whole_image_scores_the_box_fraction():
    gt = M.gt_map([[0.0, 0.0, 0.5, 0.5]], "vggss")  # 25% of the frame
    assert M.ciou(M.whole_image_map(), gt) == pytest.approx(0.25)
    assert M.ciou(M.whole_image_map(), gt, 0.5) == pytest.approx(0.25)


def test_centre_box_map_levels():
    m = M.centre_box_map(0.5)
    assert m.shape == (224, 224) and m.min() >= 0 and m.max() <= 1
    box = np.zeros((224, 224))
    box[56:168, 56:168] = 1  # half the side, 25% area
    assert np.array_equal(m >= 0.5, box.astype(bool))  # fixed 0.5 selects exactly the box
    assert M.ciou(m, box, 0.5) == 1.0
    infer = m >= np.sort(m.ravel())[224 * 224 // 2]
    # the median rule selects a bigger centred square containing the box
    assert infer[box.astype(bool)].all() and infer.sum() >= 224 * 224 // 2


def test_oracle_map_ranks_box_first():
    gt = M.gt_map([[0.0, 0.0, 0.5, 0.5]], "vggss")  # area a = 0.25: median ceiling 2a = 0.5
    o = M.oracle_map(gt)
    assert M.ciou(o, gt) == pytest.approx(0.5)
    assert M.ciou(o, gt, 0.5) == 1.0
    big = M.gt_map([[0.0, 0.0, 1.0, 0.75]], "vggss")  # 75%: the median rule selects the box
    assert M.ciou(M.oracle_map(big), big) == 1.0
    fl = M.gt_map([[0, 0, 128, 128], [64, 64, 200, 200]], "flickr")
    assert M.ciou(M.oracle_map(fl), fl, 0.5) == 1.0
    assert M.evaluate_maps(np.stack([o]), np.stack([gt]))["mse"] < 1e-5



def test_auroc_by_hand_with_ties_and_one_class():
    # positives 0.9, 0.5; negatives 0.5, 0.1: pairs (0.9>0.5) (0.9>0.1) (0.5=0.5 half) (0.5>0.1)
    assert M.auroc([0.9, 0.5, 0.5, 0.1], [True, True, False, False]) == 3.5 / 4
    assert M.auroc([0.1, 0.9], [True, False]) == 0.0
    assert M.auroc(torch.tensor([0.3, 0.3]), torch.tensor([True, False])) == 0.5
    assert math.isnan(M.auroc([0.2, 0.4], [True, True]))
