"""One optimisation step of every method, and map prediction (docs/method.md §4-§5).

Batches are dicts of tensors: ``frame`` (B, 3, S, S) float in [0, 1], ``audio`` (B, T) float;
labeled batches carry ``gt`` (B, 224, 224) (``metrics.gt_map``); unlabeled ones may carry
``true_map`` (B, 224, 224), the synthetic truth, used for monitoring only. All loss maps are
224x224. Returned stats are plain Python floats; NaN means "not defined at this step" (e.g.
``pseudo_area`` when no sample was kept), so average them with ``nanmean``. The pieces:
:mod:`pipeline.dmt.pseudo_labels` (the teachers' side) and :mod:`pipeline.dmt.students` (the
students' update).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from pipeline.dmt.ema import ema_update, unwrap
from pipeline.dmt.pseudo_labels import (
    NAN,
    NO_PSEUDO,
    make_pseudo_labels,
    pseudo_label_stats,
    teacher_maps,
)
from pipeline.dmt.state import DMTState
from pipeline.dmt.students import CONTRASTIVE_ONLY, Targets, audio_inputs, train_students
from pipeline.methods import (
    ROLES,
    STUDENT_A,
    STUDENT_B,
    TEACHER_A,
    TEACHER_B,
    TEACHER_MEAN,
    method_of,
)
from pipeline.metrics import SIZE
from pipeline.models.heads import localization_map

WHICH = ROLES  # every role predict_maps can draw


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}


def stage1_step(state: DMTState, labeled_batch: dict[str, Any], cfg=None) -> dict[str, float]:
    """Warm-up on labeled clips: lambda_sup * BCE(map, gt) + lambda_c * contrastive (ezvsl:
    contrastive only, boxes ignored; it may be given any clips). Teachers are then set equal to
    their students (see ``state.py``). Returns loss_total, loss_sup, loss_pseudo (0), loss_con.
    """
    cfg = cfg or state.dmt_cfg
    state.stage = 1
    lab = _to_device(labeled_batch, state.device)
    terms = _labeled_terms(state, lab, cfg)
    stats = train_students(state, cfg, lab["frame"], lab["audio"], terms)
    for teacher, student in _synced_pairs(state):
        ema_update(teacher, student, 0.0)
    state.step += 1
    return stats


def dmt_step(state: DMTState, labeled_batch: dict[str, Any],
             unlabeled_batch: dict[str, Any] | None, cfg=None) -> dict[str, float]:
    """Stage 2 of every method (docs/method.md §5): pseudo-labels from the teachers (dmt,
    mean_teacher), one student update on the strong views, then each teacher follows its student
    by EMA with ``cfg.ema_decay`` (frozen when ``cfg.ema`` is off). supervised: labeled clips
    only; ezvsl: contrastive on labeled + unlabeled. Returns loss_total, loss_sup, loss_pseudo,
    loss_con, kept, filtered, consensus_iou, pseudo_area (+ pseudo_iou_kept/all given true_map).
    """
    cfg = cfg or state.dmt_cfg
    state.stage = 2
    lab = _to_device(labeled_batch, state.device)
    unl = _to_device(unlabeled_batch, state.device) if unlabeled_batch is not None else None
    n_lab = len(lab["frame"])
    method = method_of(state.method)
    if not method.reads_unlabeled or unl is None:
        return _labeled_only_step(state, lab, cfg)
    frames = torch.cat([lab["frame"], unl["frame"]])
    wave = torch.cat([lab["audio"], unl["audio"]])
    if not method.teachers:  # EZ-VSL: contrastive on every clip
        stats = train_students(state, cfg, frames, wave,
                               Targets(None, n_lab, None, CONTRASTIVE_ONLY))
        return {**stats, **NO_PSEUDO, **_follow_students(state, cfg)}  # no teachers: counts
    inputs = audio_inputs(state, wave)  # shared by teachers (unlabeled rows) and students
    maps = teacher_maps(state, unl, [x[n_lab:] for x in inputs])
    label, keep, iou = make_pseudo_labels(maps, cfg)
    pstats = pseudo_label_stats(label, keep, iou, unl.get("true_map"), unl.get("has_boxes"))
    targets = Targets(torch.cat([lab["gt"].float(), label.float()]), n_lab, keep,
                      (cfg.lambda_sup, cfg.lambda_u, cfg.lambda_c))
    stats = train_students(state, cfg, frames, wave, targets, inputs)
    return {**stats, **pstats, **_follow_students(state, cfg)}


def _pairs(state: DMTState) -> list[tuple]:
    """(teacher, student) pairs; none for the teacher-less methods (supervised, ezvsl)."""
    if not state.teachers:
        return []
    return list(zip(state.teachers, state.students, strict=True))


def _synced_pairs(state: DMTState) -> list[tuple]:
    """:func:`_pairs`, after the shell's buffer sync (see ``DMTState.sync_buffers``)."""
    pairs = _pairs(state)
    if state.sync_buffers is not None:
        for _, student in pairs:
            state.sync_buffers(unwrap(student))
    return pairs


def _labeled_terms(state: DMTState, lab: dict[str, Any], cfg) -> Targets:
    """The targets of a step on labeled clips only."""
    if not method_of(state.method).reads_boxes:  # EZ-VSL never sees boxes
        return Targets(None, len(lab["frame"]), None, CONTRASTIVE_ONLY)
    return Targets(lab["gt"], len(lab["frame"]), None, (cfg.lambda_sup, 0.0, cfg.lambda_c))


def _follow_students(state: DMTState, cfg) -> dict[str, float]:
    """End of a stage-2 step: EMA of every teacher towards its student (frozen if ema off).
    Returns ``time_ema_s`` (synchronised with the device) when ``state.profile`` is on."""
    t0 = _synced_clock(state) if state.profile else 0.0
    if cfg.ema:
        for teacher, student in _synced_pairs(state):
            ema_update(teacher, student, cfg.ema_decay)
    state.step += 1
    return {"time_ema_s": _synced_clock(state) - t0} if state.profile else {}


def _synced_clock(state: DMTState) -> float:
    if state.device.type == "cuda":
        torch.cuda.synchronize(state.device)
    return time.perf_counter()


def _labeled_only_step(state: DMTState, lab: dict[str, Any], cfg) -> dict[str, float]:
    """A stage-2 step without unlabeled data (supervised; or no unlabeled batch given)."""
    terms = _labeled_terms(state, lab, cfg)
    stats = train_students(state, cfg, lab["frame"], lab["audio"], terms)
    return {**stats, **NO_PSEUDO, **_follow_students(state, cfg)}


# ----------------------------------------------------------------------------- prediction

def _nets_for(state: DMTState, which: str) -> list:
    teachers = state.teachers or state.students  # single-model methods: everything is the model
    roles = {TEACHER_A: teachers[:1], TEACHER_B: teachers[-1:], TEACHER_MEAN: teachers,
             STUDENT_A: state.students[:1], STUDENT_B: state.students[-1:]}
    if which not in roles:
        raise ValueError(f"predict_maps: which must be one of {', '.join(WHICH)}, got {which!r}")
    return [unwrap(m) for m in roles[which]]


@torch.no_grad()
def predict_maps(state: DMTState, batch: dict[str, Any], which: str = "teacher_mean"
                 ) -> torch.Tensor:
    """Normalised maps (B, 224, 224) of one role in eval mode without gradients; teacher_mean is
    the mean of the two teachers' maps. Each network's train/eval mode is restored afterwards."""
    b = _to_device(batch, state.device)
    maps = []
    for net in _nets_for(state, which):
        was_training = net.training
        net.eval()
        try:
            with state.autocast():
                v, a = net(b["frame"], b["audio"])
            maps.append(localization_map(v.float(), a.float(), state.model_cfg.temperature,
                                         SIZE))
        finally:
            net.train(was_training)
    return torch.stack(maps).mean(dim=0)


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values (NaN if none): how to average step stats over an epoch."""
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else NAN
