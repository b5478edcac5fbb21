"""The GPU path on the CPU: bf16 / fp16 autocast and channels_last keep DMT's invariants (no
gradients to teachers, the EMA formula, noise filtering and IPL on the teachers' maps), maps and
losses stay float32, and the fp16 gradient scaler is part of the state."""

from __future__ import annotations

import pytest
import torch

from pipeline.config import DMTConfig, ModelConfig, OptimConfig
from pipeline.dmt import (
    audio_inputs,
    dmt_step,
    make_pseudo_labels,
    make_state,
    predict_maps,
    stage1_step,
    teacher_maps,
)

try:
    from tests.test_dmt import S
    from tests.test_dmt import scene_batch as short_scene_batch
except ImportError:  # pytest run without the repo root on sys.path
    from test_dmt import S
    from test_dmt import scene_batch as short_scene_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MODEL = ModelConfig(dim=16, width=8, image_size=S, audio_b="soundnet")


def scene_batch(n: int, seed: int, labeled: bool = True) -> dict[str, torch.Tensor]:
    """test_dmt's scenes with 1 s of audio: SoundNet's deepest layers then see 2+ steps. (With
    0.5 s they see one, and torch 2.11's oneDNN bf16 Conv1d backward on CPU then returns
    non-finite weight gradients now and then: a CPU-kernel fault, not this code's.)"""
    batch = short_scene_batch(n, seed, labeled)
    batch["audio"] = batch["audio"].repeat(1, 2)
    return batch


def _state(precision: str, channels_last: bool = False, **dmt_kw):
    return make_state(MODEL, DMTConfig(method="dmt", ema_decay=0.9, **dmt_kw),
                      OptimConfig(lr=1e-3), "cpu", seed=0, precision=precision,
                      channels_last=channels_last)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_keeps_the_invariants(precision):
    st = _state(precision)
    stage1_step(st, scene_batch(4, 0))
    unl = scene_batch(4, 1, labeled=False)
    with torch.no_grad():  # what the step will see: teachers do not change before its EMA
        maps = teacher_maps(st, unl, [x for x in audio_inputs(st, unl["audio"])])
        label, keep, iou = make_pseudo_labels(maps, st.dmt_cfg)
    assert all(m.dtype == torch.float32 for m in maps)
    masks = [m >= st.dmt_cfg.delta for m in maps]
    assert torch.equal(label, masks[0] & masks[1])  # IPL
    assert torch.equal(keep, iou >= st.dmt_cfg.tau)  # NF
    before = [{k: v.clone() for k, v in t.state_dict().items()} for t in st.teachers]
    stats = dmt_step(st, scene_batch(4, 0), unl)
    assert stats["kept"] == float(keep.sum()) and stats["kept"] + stats["filtered"] == 4
    assert all(torch.isfinite(torch.tensor(stats[k])) for k in ("loss_total", "loss_con"))
    for teacher, student, old in zip(st.teachers, st.students, before, strict=True):
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
        grads = [p.grad for p in student.parameters() if p.grad is not None]
        assert grads  # students learn (fp16: the scaler may skip a step whose grads overflowed)
        if st.scaler is None:
            assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0
                                                                        for g in grads)
        for name, t in teacher.state_dict().items():  # theta_T = a theta_T + (1 - a) theta_S
            s = student.state_dict()[name]
            if t.is_floating_point():
                assert t.dtype == torch.float32, name  # weights and EMA stay float32
                assert torch.allclose(t, old[name] + 0.1 * (s - old[name]), atol=1e-6), name


def test_bf16_maps_agree_with_fp32_and_are_float32():
    fp32, bf16 = _state("fp32"), _state("bf16")
    bf16.students[0].load_state_dict(fp32.students[0].state_dict())
    batch = scene_batch(4, 2)
    a, b = predict_maps(fp32, batch, "student_a"), predict_maps(bf16, batch, "student_a")
    assert b.dtype == torch.float32 and a.shape == b.shape == (4, 224, 224)
    assert 0 < float((a - b).abs().mean()) < 0.05  # bf16 differs, a little


def test_fp16_scaler_is_part_of_the_state():
    st = _state("fp16")
    assert st.scaler is not None and _state("bf16").scaler is None
    stage1_step(st, scene_batch(4, 0))
    sd = st.state_dict()
    assert "scaler" in sd and sd["scaler"]["scale"] > 0
    fresh = _state("fp16")
    fresh.load_state_dict(sd)
    assert fresh.scaler.state_dict()["scale"] == st.scaler.state_dict()["scale"]
    with pytest.raises(ValueError, match="train.precision"):
        _state("int8")


def test_channels_last_visual_encoder_computes_the_same_features():
    plain, nhwc = _state("fp32"), _state("fp32", channels_last=True)
    conv = nhwc.students[0].visual.trunk[0][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    frames = scene_batch(2, 3)["frame"]
    with torch.no_grad():
        a, b = plain.students[0].encode_visual(frames), nhwc.students[0].encode_visual(frames)
    assert torch.allclose(a, b, atol=1e-5)
