"""One optimisation step of every method, and map prediction (docs/method.md §4-§5).

Batches are dicts of tensors: ``frame`` (B, 3, S, S) float in [0, 1], ``audio`` (B, T) float;
labeled batches carry ``gt`` (B, 224, 224) (``metrics.gt_map``); unlabeled ones may carry
``true_map`` (B, 224, 224), the synthetic truth, used for monitoring only. All loss maps are
224x224. Returned stats are plain Python floats; NaN means "not defined at this step" (e.g.
``pseudo_area`` when no sample was kept), so average them with ``nanmean``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from pipeline.dmt.augment import mask_audio_input, strong_frames, weak_view
from pipeline.dmt.ema import ema_update, unwrap
from pipeline.dmt.filtering import binarize, consensus_iou, noise_filter
from pipeline.dmt.ipl import intersect
from pipeline.dmt.losses import contrastive_loss, map_bce
from pipeline.dmt.state import DMTState
from pipeline.methods import (
    ROLES,
    STUDENT_A,
    STUDENT_B,
    TEACHER_A,
    TEACHER_B,
    TEACHER_MEAN,
    method_of,
)
from pipeline.models.heads import localization_map

SIZE = 224
WHICH = ROLES  # every role predict_maps can draw
NAN = float("nan")


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}


# ----------------------------------------------------------------------------- pseudo-labels

@torch.no_grad()
def audio_inputs(state: DMTState, wave: torch.Tensor) -> list[torch.Tensor]:
    """Front-end output of ``wave`` (B, T) for every pair, computed once per audio backbone kind
    (front-ends have no parameters, so student, teacher and a same-kind partner share it)."""
    cache: dict[str, torch.Tensor] = {}
    out = []
    for student in state.students:
        net = unwrap(student)
        if net.audio_kind not in cache:
            cache[net.audio_kind] = net.audio_input(wave)
        out.append(cache[net.audio_kind])
    return out


@torch.no_grad()
def teacher_maps(state: DMTState, batch: dict[str, Any],
                 inputs: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Each teacher's normalised map (B, 224, 224) of the weak view, eval mode, no gradients.
    ``inputs``: precomputed front-end outputs per pair (``audio_inputs``), else computed here."""
    if not state.teachers:
        return []
    frames, temp = weak_view(batch["frame"]), state.model_cfg.temperature
    inputs = inputs if inputs is not None else audio_inputs(state, batch["audio"])
    out = []
    for teacher, x in zip(state.teachers, inputs, strict=True):
        teacher.eval()
        with state.autocast():
            v, a = teacher(frames, x, audio_is_input=True)
        out.append(localization_map(v.float(), a.float(), temp, SIZE))  # maps in float32
    return out


def make_pseudo_labels(maps: list[torch.Tensor], cfg
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Teacher maps -> (label (B, H, W) bool, keep (B,) bool, consensus IoU (B,) or None).

    Two teachers (DMT): M = P >= delta per teacher; keep iff IoU(M_A, M_B) >= tau (all kept
    when ``cfg.noise_filtering`` is off); label = M_A AND M_B (teacher A's M_A when ``cfg.ipl``
    is off). One teacher (mean teacher): its M, every sample kept, no IoU.
    """
    masks = [binarize(p, cfg.delta) for p in maps]
    if len(masks) == 1:
        return masks[0], torch.ones(len(masks[0]), dtype=torch.bool, device=masks[0].device), None
    iou = consensus_iou(masks[0], masks[1])
    keep = noise_filter(iou, cfg.tau) if cfg.noise_filtering else torch.ones_like(iou).bool()
    label = intersect(masks[0], masks[1]) if cfg.ipl else masks[0]
    return label, keep, iou


@torch.no_grad()
def pseudo_label_stats(label: torch.Tensor, keep: torch.Tensor, iou: torch.Tensor | None,
                       true_map: torch.Tensor | None, has_truth: torch.Tensor | None = None
                       ) -> dict[str, float]:
    """Monitoring only (never in a loss): kept/filtered counts, mean consensus IoU, mean area of
    kept pseudo-labels and, given the truth ``true_map`` (B, H, W), the pseudo-labels' IoU with
    it over kept and over all samples (the paper's Fig. 5(a)) and, over the kept samples, the
    mean ratio of a pseudo-label's area to its box's (``area_ratio_kept``); ``has_truth`` (B,)
    bool limits those to the rows that really carry boxes."""
    n_kept = int(keep.sum())
    stats = {
        "kept": float(n_kept), "filtered": float(len(keep) - n_kept),
        "consensus_iou": float(iou.mean()) if iou is not None else NAN,
        "pseudo_area": float(label[keep].float().mean()) if n_kept else NAN,
    }
    if true_map is not None:
        rows = has_truth.bool() if has_truth is not None else torch.ones_like(keep)
        truth = true_map >= 0.5
        piou = consensus_iou(label, truth)
        stats["pseudo_iou_all"] = float(piou[rows].mean()) if rows.any() else NAN
        stats["pseudo_iou_kept"] = float(piou[rows & keep].mean()) if (rows & keep).any() else NAN
        # a pseudo-label smaller than the box it should cover (IPL's intersection shrinks it)
        # teaches maps that a fixed threshold cuts too small: its area over the box's
        sel = rows & keep
        ratio = label[sel].flatten(1).sum(1) / truth[sel].flatten(1).sum(1).clamp_min(1)
        stats["area_ratio_kept"] = float(ratio.double().mean()) if sel.any() else NAN
    return stats


NO_PSEUDO = {"kept": 0.0, "filtered": 0.0, "consensus_iou": NAN, "pseudo_area": NAN}


# ----------------------------------------------------------------------------- student update

def _student_loss(state: DMTState, student, frames, x, target, n_sup, keep, weights, cfg):
    """Loss of one student on strong-view frames (N, 3, S, S) and front-end outputs x (N, ...).

    Rows [:n_sup] are supervised by ``target`` (gt), rows [n_sup:] by ``target`` (pseudo-label)
    weighted by ``keep``; the contrastive term uses all N pairs. Gradients flow into the student
    only (targets are constants). Returns (weighted total, {sup, pseudo, con}).
    """
    net, temp = unwrap(student), state.model_cfg.temperature
    fe = net.audio_frontend
    x = mask_audio_input(x, fe.time_axis, fe.freq_axis, cfg, state.generator)  # a masked copy
    with state.autocast():  # the encoders in train.precision; heads and losses in float32
        v, a = student(frames, x, audio_is_input=True)  # via forward: DDP-safe
    v, a = v.float(), a.float()
    con = contrastive_loss(v, a, temp)
    sup = pseudo = con.new_zeros(())
    if target is not None:
        maps = localization_map(v, a, temp, SIZE)
        if n_sup:
            sup = map_bce(maps[:n_sup], target[:n_sup])
        if keep is not None:
            pseudo = map_bce(maps[n_sup:], target[n_sup:], keep)
    w_sup, w_u, w_c = weights
    return w_sup * sup + w_u * pseudo + w_c * con, {"sup": sup, "pseudo": pseudo, "con": con}


def _train_students(state: DMTState, cfg, frames, wave, target, n_sup, keep, weights,
                    inputs: list[torch.Tensor] | None = None) -> dict[str, float]:
    """Strong view, every student's loss, one optimiser step. Losses are reported as the mean
    over students; the optimised objective is their sum (each student gets its own gradient).
    ``inputs``: front-end outputs of ``wave`` per student if already computed."""
    for s in state.students:
        s.train()
    inputs = inputs if inputs is not None else audio_inputs(state, wave)
    frames, (target,) = strong_frames(frames, [target], cfg, state.generator)
    state.optimizer.zero_grad(set_to_none=True)
    totals, parts = [], []
    for student, x in zip(state.students, inputs, strict=True):
        total, p = _student_loss(state, student, frames, x, target, n_sup, keep, weights, cfg)
        totals.append(total)
        parts.append(p)
    loss = torch.stack(totals).sum()
    if state.scaler is not None:  # fp16: scale the loss so small gradients do not underflow
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        loss.backward()
        state.optimizer.step()
    n = len(totals)
    stats = {"loss_total": sum(float(t.detach()) for t in totals) / n}
    for key in ("sup", "pseudo", "con"):
        stats[f"loss_{key}"] = sum(float(p[key].detach()) for p in parts) / n
    return stats


def stage1_step(state: DMTState, labeled_batch: dict[str, Any], cfg=None) -> dict[str, float]:
    """Warm-up on labeled clips: lambda_sup * BCE(map, gt) + lambda_c * contrastive (ezvsl:
    contrastive only, boxes ignored; it may be given any clips). Teachers are then set equal to
    their students (see ``state.py``). Returns loss_total, loss_sup, loss_pseudo (0), loss_con.
    """
    cfg = cfg or state.dmt_cfg
    state.stage = 1
    lab = _to_device(labeled_batch, state.device)
    terms = _labeled_terms(state, lab, cfg)
    stats = _train_students(state, cfg, lab["frame"], lab["audio"], *terms)
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
        stats = _train_students(state, cfg, frames, wave, None, n_lab, None, (0.0, 0.0, 1.0))
        return {**stats, **NO_PSEUDO, **_follow_students(state, cfg)}  # no teachers: counts
    inputs = audio_inputs(state, wave)  # shared by teachers (unlabeled rows) and students
    maps = teacher_maps(state, unl, [x[n_lab:] for x in inputs])
    label, keep, iou = make_pseudo_labels(maps, cfg)
    pstats = pseudo_label_stats(label, keep, iou, unl.get("true_map"), unl.get("has_boxes"))
    target = torch.cat([lab["gt"].float(), label.float()])
    weights = (cfg.lambda_sup, cfg.lambda_u, cfg.lambda_c)
    stats = _train_students(state, cfg, frames, wave, target, n_lab, keep, weights, inputs)
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


def _labeled_terms(state: DMTState, lab: dict[str, Any], cfg) -> tuple:
    """(target, n_sup, keep, weights) for a step on labeled clips only."""
    if not method_of(state.method).reads_boxes:  # EZ-VSL never sees boxes
        return None, len(lab["frame"]), None, (0.0, 0.0, 1.0)
    return lab["gt"], len(lab["frame"]), None, (cfg.lambda_sup, 0.0, cfg.lambda_c)


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
    stats = _train_students(state, cfg, lab["frame"], lab["audio"], *terms)
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
