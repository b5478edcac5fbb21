"""The student update shared by every method and stage: each student's loss on the strong view,
summed, one optimiser step (docs/method.md §4, §5.5-5.6).

Shapes: frames (N, 3, S, S) float in [0, 1]; audio front-end outputs (N, ...) per pair; targets
(N, 224, 224) in [0, 1]. Gradients flow into the students only: targets, keep weights and the
teachers' maps are constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.dmt.augment import mask_audio_input, strong_frames
from pipeline.dmt.ema import unwrap
from pipeline.dmt.losses import contrastive_loss, map_bce
from pipeline.dmt.state import DMTState
from pipeline.metrics import SIZE
from pipeline.models.heads import localization_map

CONTRASTIVE_ONLY = (0.0, 0.0, 1.0)  # (sup, pseudo, con) weights of EZ-VSL's objective


@dataclass(frozen=True)
class Targets:
    """What the students learn from in one step: rows [:n_sup] of ``maps`` are ground truth,
    rows [n_sup:] pseudo-labels weighted by ``keep`` (N - n_sup,) (0: filtered out); ``maps``
    None: no map loss (EZ-VSL). ``weights``: (lambda_sup, lambda_u, lambda_c)."""

    maps: torch.Tensor | None
    n_sup: int
    keep: torch.Tensor | None
    weights: tuple[float, float, float]


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



def student_loss(state: DMTState, student, frames: torch.Tensor, x: torch.Tensor,
                 targets: Targets, cfg) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one student on strong-view frames (N, 3, S, S) and front-end outputs x (N, ...):
    map BCE against ``targets`` and the contrastive term over all N pairs. Gradients flow into
    the student only. Returns (weighted total, {sup, pseudo, con})."""
    net, temp = unwrap(student), state.model_cfg.temperature
    fe = net.audio_frontend
    x = mask_audio_input(x, fe.time_axis, fe.freq_axis, cfg, state.generator)  # a masked copy
    with state.autocast():  # the encoders in train.precision; heads and losses in float32
        v, a = student(frames, x, audio_is_input=True)  # via forward: DDP-safe
    v, a = v.float(), a.float()
    con = contrastive_loss(v, a, temp)
    sup = pseudo = con.new_zeros(())
    if targets.maps is not None:
        maps, n = localization_map(v, a, temp, SIZE), targets.n_sup
        if n:
            sup = map_bce(maps[:n], targets.maps[:n])
        if targets.keep is not None:
            pseudo = map_bce(maps[n:], targets.maps[n:], targets.keep)
    w_sup, w_u, w_c = targets.weights
    return w_sup * sup + w_u * pseudo + w_c * con, {"sup": sup, "pseudo": pseudo, "con": con}


def strong_views(frames: torch.Tensor, targets: Targets, cfg, gen: torch.Generator,
                 n_students: int) -> list[tuple[torch.Tensor, Targets]]:
    """(frames, targets) of each student's strong view: one view shared by every student
    (``cfg.student_views`` "shared", the default), or one drawn for each ("own"); the target
    maps move with the frames of their view."""
    def draw() -> tuple[torch.Tensor, Targets]:
        view, (maps,) = strong_frames(frames, [targets.maps], cfg, gen)
        return view, Targets(maps, targets.n_sup, targets.keep, targets.weights)

    if cfg.student_views == "own":
        return [draw() for _ in range(n_students)]
    return [draw()] * n_students


def train_students(state: DMTState, cfg, frames: torch.Tensor, wave: torch.Tensor,
                   targets: Targets, inputs: list[torch.Tensor] | None = None
                   ) -> dict[str, float]:
    """Strong view, every student's loss, one optimiser step. Losses are reported as the mean
    over students; the optimised objective is their sum (each student gets its own gradient).
    ``inputs``: front-end outputs of ``wave`` per student if already computed."""
    for s in state.students:
        s.train()
    inputs = inputs if inputs is not None else audio_inputs(state, wave)
    views = strong_views(frames, targets, cfg, state.generator, len(state.students))
    state.optimizer.zero_grad(set_to_none=True)
    totals, parts = [], []
    for student, x, (view, view_targets) in zip(state.students, inputs, views, strict=True):
        total, p = student_loss(state, student, view, x, view_targets, cfg)
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
