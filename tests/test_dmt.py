"""Dual Mean-Teacher in plain PyTorch: its steps on tiny synthetic batches (the pieces by hand:
test_dmt_parts.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from pipeline.config import DMTConfig, ModelConfig, OptimConfig
from pipeline.dmt import (
    audio_inputs,
    dmt_step,
    make_state,
    predict_maps,
    stage1_step,
    teacher_maps,
)
from tests.dmt_helpers import NO_AUG, Wrapper

pytestmark = pytest.mark.usefixtures("one_torch_thread")

S, T = 32, 8000  # tiny frames and 0.5 s of audio keep every step well under a second
MODEL = ModelConfig(dim=16, width=8, image_size=S)


def scene_batch(n: int, seed: int, labeled: bool = True) -> dict[str, torch.Tensor]:
    """n frames with one bright square each, audio a tone whose pitch encodes the square's
    horizontal position, and the square's 224x224 box map (gt, or true_map when unlabeled)."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(n, 3, S, S, generator=g) * 0.3
    maps = torch.zeros(n, 224, 224)
    t = torch.arange(T) / 16000
    audio = torch.zeros(n, T)
    for i in range(n):
        x0, y0 = (int(v) for v in torch.randint(0, S // 2, (2,), generator=g))
        frames[i, :, y0:y0 + S // 2, x0:x0 + S // 2] = 1.0
        k = 224 // S
        maps[i, y0 * k:(y0 + S // 2) * k, x0 * k:(x0 + S // 2) * k] = 1.0
        audio[i] = 0.5 * torch.sin(2 * math.pi * (300 + 100 * x0) * t)
    return {"frame": frames, "audio": audio, ("gt" if labeled else "true_map"): maps}


def state_for(method: str, seed: int = 0, model: ModelConfig = MODEL, **dmt_kw):
    return make_state(model, DMTConfig(method=method, **dmt_kw), OptimConfig(lr=1e-3), "cpu", seed)


# ----------------------------------------------------------------------------- steps

def grads_ok(module: nn.Module) -> tuple[bool, float]:
    grads = [p.grad for p in module.parameters()]
    total = sum(float(g.abs().sum()) for g in grads if g is not None)
    return all(g is not None for g in grads), total


def test_dmt_step_grads_flow_to_students_only():
    st = state_for("dmt")
    unl = scene_batch(4, 1, labeled=False)
    unl["id"] = ["a", "b", "c", "d"]  # the loader's extra keys pass through
    unl["has_boxes"] = torch.ones(4, dtype=torch.bool)
    stats = dmt_step(st, scene_batch(4, 0), unl)
    for student in st.students:
        all_set, total = grads_ok(student)
        assert all_set and total > 0
        nonzero = [float(p.grad.abs().sum()) > 0 for p in student.parameters()]
        assert sum(nonzero) >= 0.9 * len(nonzero)
    for teacher in st.teachers:
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
        assert not teacher.training
    assert all(isinstance(v, float) for v in stats.values())
    assert {"loss_total", "loss_sup", "loss_pseudo", "loss_con", "kept", "filtered",
            "consensus_iou", "pseudo_area", "pseudo_iou_kept", "pseudo_iou_all"} <= set(stats)
    assert stats["kept"] + stats["filtered"] == 4
    assert 0 <= stats["pseudo_iou_all"] <= 1 and st.step == 1 and st.stage == 2


def test_pairs_differ_and_stage1_syncs_teachers():
    st = state_for("dmt")
    sa, sb = (dict(s.named_parameters()) for s in st.students)
    assert not torch.equal(sa["visual.proj.weight"], sb["visual.proj.weight"])  # A != B init
    stats = stage1_step(st, scene_batch(4, 0))
    assert set(stats) == {"loss_total", "loss_sup", "loss_pseudo", "loss_con"}
    for t, s in zip(st.teachers, st.students, strict=True):
        for (n, pt), ps in zip(t.state_dict().items(), s.state_dict().values(), strict=True):
            assert torch.equal(pt, ps), n


def test_student_loss_depends_on_strong_view():
    lab, unl = scene_batch(4, 0), scene_batch(4, 1, labeled=False)

    def loss(gen_seed: int) -> float:
        st = state_for("dmt", tau=0.0)
        st.generator.manual_seed(gen_seed)
        return dmt_step(st, lab, unl)["loss_total"]

    assert loss(1) == loss(1)  # deterministic given the generator
    assert loss(1) != loss(2)


def test_supervised_loss_goes_down():
    st = make_state(MODEL, DMTConfig(method="supervised", lambda_c=0.0,
                                     **{**NO_AUG, "flip_prob": 0.5}), OptimConfig(lr=3e-3))
    batch = scene_batch(8, 3)
    losses = [stage1_step(st, batch)["loss_sup"] for _ in range(60)]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)  # measured: about 0.50 -> 0.26


@pytest.mark.parametrize("method", ["dmt", "mean_teacher", "supervised", "ezvsl"])
def test_every_method_runs_both_stages(method):
    st = state_for(method)
    s1 = stage1_step(st, scene_batch(4, 0))
    s2 = dmt_step(st, scene_batch(4, 0), scene_batch(4, 1, labeled=False))
    assert all(isinstance(v, float) and math.isfinite(v) for v in s1.values())
    assert all(isinstance(v, float) for v in s2.values()) and math.isfinite(s2["loss_total"])
    if method == "ezvsl":
        assert s1["loss_sup"] == 0.0 and s2["loss_sup"] == 0.0 and s2["loss_pseudo"] == 0.0
    if method == "supervised":
        assert s2["kept"] == 0 and s2["loss_pseudo"] == 0.0
    if method == "mean_teacher":
        assert s2["kept"] == 4 and math.isnan(s2["consensus_iou"])
    n_teachers = {"dmt": 2, "mean_teacher": 1}.get(method, 0)
    assert len(st.teachers) == n_teachers
    for which in ("teacher_a", "teacher_b", "teacher_mean", "student_a", "student_b"):
        m = predict_maps(st, scene_batch(2, 5), which)
        assert m.shape == (2, 224, 224) and not m.requires_grad
        assert m.min() >= 0 and m.max() <= 1
    assert all(s.training for s in st.students)  # predict_maps restored the mode


def test_teacher_mean_is_mean_of_teachers():
    st = state_for("dmt")
    b = scene_batch(2, 5)
    ma, mb = predict_maps(st, b, "teacher_a"), predict_maps(st, b, "teacher_b")
    assert torch.allclose(predict_maps(st, b, "teacher_mean"), (ma + mb) / 2)
    assert not torch.allclose(ma, mb)
    with pytest.raises(ValueError):
        predict_maps(st, b, "teacher_c")


def test_ablation_switches_in_a_step():
    lab, unl = scene_batch(4, 0), scene_batch(4, 1, labeled=False)
    # NF off keeps every unlabeled clip, whatever tau says
    st = state_for("dmt", noise_filtering=False, tau=1.0)
    s = dmt_step(st, lab, unl)
    assert s["kept"] == 4 and s["filtered"] == 0
    # IPL off: pseudo-label = teacher A's binary map; on: the AND (teachers fixed before the step)
    for ipl in (False, True):
        st = state_for("dmt", noise_filtering=False, ipl=ipl)
        pa, pb = teacher_maps(st, unl)
        expect = (pa >= 0.5) if not ipl else (pa >= 0.5) & (pb >= 0.5)
        s = dmt_step(st, lab, unl)
        assert s["pseudo_area"] == pytest.approx(float(expect.float().mean()), abs=1e-6)
    # EMA off: teachers frozen; on: they move towards the students, and with decay 0 they
    # are the students' new weights (the two benchmark rows without averaging teachers)
    for ema, decay in ((False, 0.9), (True, 0.9), (True, 0.0)):
        st = state_for("dmt", ema=ema, ema_decay=decay)
        before = [copy.deepcopy(t.state_dict()) for t in st.teachers]
        dmt_step(st, lab, unl)
        same = all(torch.equal(v, t.state_dict()[k])
                   for b, t in zip(before, st.teachers, strict=True) for k, v in b.items())
        assert same is (not ema)
        copies = all(torch.equal(v, s.state_dict()[k]) for t, s in
                     zip(st.teachers, st.students, strict=True)
                     for k, v in t.state_dict().items())
        assert copies is (ema and decay == 0.0)


def test_wrapped_students_and_shared_frontends():
    st = state_for("dmt")
    st.students = [Wrapper(s) for s in st.students]  # as a later issue wraps them in DDP
    s = dmt_step(st, scene_batch(4, 0), scene_batch(4, 1, labeled=False))
    assert math.isfinite(s["loss_total"])
    xs = audio_inputs(st, scene_batch(2, 0)["audio"])
    assert xs[0] is xs[1]  # same backbone kind: the front-end runs once
    st2 = state_for("dmt", model=ModelConfig(dim=16, width=8, image_size=S, audio_b="soundnet"))
    xa, xb = audio_inputs(st2, scene_batch(2, 0)["audio"])
    assert xa.dim() == 4 and xb.shape == (2, 1, T)
    assert math.isfinite(dmt_step(st2, scene_batch(4, 0),
                                  scene_batch(4, 1, labeled=False))["loss_total"])


def test_state_dict_round_trip():
    st = state_for("dmt")
    dmt_step(st, scene_batch(4, 0), scene_batch(4, 1, labeled=False))
    sd = st.state_dict()
    other = state_for("dmt", seed=9)
    other.load_state_dict(sd)
    assert other.step == 1 and other.stage == 2
    b = scene_batch(2, 5)
    assert torch.equal(predict_maps(st, b, "teacher_mean"), predict_maps(other, b, "teacher_mean"))
    with pytest.raises(ValueError):
        state_for("ezvsl").load_state_dict(sd)
