"""Train and evaluate one benchmark row in this process: plain PyTorch, no Ray, no MLflow.

The steps are the product's own (``run_epoch`` -> ``stage1_step`` / ``dmt_step``, scored by
``evaluation.score_batches``); only the batches come from memory (``memory.py``) instead of a Ray
Dataset. Compute is measured as the CPU seconds of this process's training loop (one torch
thread per row), which other rows running beside it on other cores do not inflate the way they
inflate wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from pipeline import config as config_mod
from pipeline.bench.budget import DONE, RUNNING, FixedBudget, FollowedBudget
from pipeline.bench.memory import (
    ClipArrays,
    JointBatches,
    endless_batches,
    labeled_subset,
    ordered_batches,
    unlabeled_subset,
)
from pipeline.bench.plan import BenchRow
from pipeline.dmt.state import make_state
from pipeline.engine import evaluation
from pipeline.engine.batches import to_torch
from pipeline.engine.loop import (
    run_epoch,
    seed_everything,
    stage_of,
    total_epochs,
    unlabeled_batch_size,
    uses_unlabeled,
)
from pipeline.methods import VARIANTS
from pipeline.models.pretrained import read_initial_weights

# Test-split batch size: part of a row's result (a float sum over a batch depends on its size),
# so whoever re-scores a row's checkpoint uses it too.
SCORE_BATCH = 64
HISTORY_KEYS = ("train/loss_total", "train/loss_sup", "train/loss_pseudo", "train/loss_con",
                "train/kept", "train/filtered", "train/consensus_iou", "train/pseudo_iou_all",
                "train/pseudo_iou_kept", "train/pseudo_area", "train/area_ratio_kept",
                "train/pseudo_good_all", "train/pseudo_good_kept", "train/consensus_auroc",
                "train/samples_per_s", "train/lr")


def row_indices(clips: ClipArrays, row: BenchRow, data_seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(labeled, unlabeled) indices of the training pool for ``row``.

    ezvsl reads no box, so every pool clip feeds it on both streams; supervised_all labels the
    whole pool; every other row gets the labeled subset of its seed and, as unlabeled, the rest
    of the pool or ``row.unlabeled`` times its labeled count of it (``unlabeled_subset``).

    The subsets are drawn from ``subset_seed(data_seed, row.seed)``: each seed labels other
    clips (the spread over seeds includes which clips are labeled), rows of one seed share
    them (they are paired), and within a seed a smaller fraction's subset lies inside a larger
    one's."""
    pool = clips.pool
    labels = VARIANTS[row.method].labels
    seed = subset_seed(data_seed, row.seed)
    if labels == "none":
        return pool, pool
    if labels == "all":
        return labeled_subset(clips, 1.0, seed), np.empty(0, dtype=int)
    labeled = labeled_subset(clips, row.fraction, seed)
    return labeled, unlabeled_subset(clips, labeled, row.unlabeled, seed)


def subset_seed(data_seed: int, row_seed: int) -> list[int]:
    """The seed of a row's labeled and unlabeled subsets (a numpy seed sequence)."""
    return [data_seed, row_seed]


def row_streams(clips: ClipArrays, cfg, lab_idx: np.ndarray, unl_idx: np.ndarray,
             rng: np.random.Generator) -> tuple[Iterator[dict], Iterator[dict] | None]:
    """The labeled and unlabeled batch streams of a row; streams over overlapping clips are
    drawn jointly (``JointBatches``), so no clip appears twice in a step."""
    n_lab, n_unl = cfg.optim.batch_size, unlabeled_batch_size(cfg)
    if not (len(unl_idx) and uses_unlabeled(cfg)):  # the same rule as the Ray Train loop
        return endless_batches(clips, lab_idx, n_lab, "gt", rng), None
    if np.intersect1d(lab_idx, unl_idx).size:
        joint = JointBatches(clips, np.union1d(lab_idx, unl_idx), n_lab, n_unl, "gt",
                             "true_map", rng)
        return joint.labeled(), joint.unlabeled()
    return (endless_batches(clips, lab_idx, n_lab, "gt", rng),
            endless_batches(clips, unl_idx, n_unl, "true_map", rng))


def _history_entry(epoch: int, stage: int, metrics: dict[str, float], cpu_s: float
                   ) -> dict[str, float]:
    entry = {"epoch": epoch + 1, "stage": stage, "cpu_s": cpu_s}
    entry.update({k.removeprefix("train/"): float(metrics[k]) for k in HISTORY_KEYS
                  if k in metrics})
    return entry


def budget_progress(cfg, budget: FixedBudget | FollowedBudget | None, cpu0: float
                    ) -> Callable[[], float] | None:
    """The schedule's progress of a compute-matched row: CPU seconds spent over its budget, so
    it anneals over the compute it is given (None: a row planned in steps). An annealed
    schedule needs the budget in advance: a matched row then waits for its reference to finish
    (``quality._next_ready``) instead of following it (``FollowedBudget``)."""
    if budget is None or cfg.optim.schedule == "constant":
        return None
    if not isinstance(budget, FixedBudget):
        raise ValueError(f"optim.schedule={cfg.optim.schedule} anneals a compute-matched row "
                         "over its CPU budget, which must be known when it starts")
    return lambda: (time.process_time() - cpu0) / max(budget.cpu_s, 1e-9)


def train_row(cfg_dict: dict[str, Any], row: BenchRow, clips: ClipArrays, threads: int = 1,
              budget: FixedBudget | FollowedBudget | None = None, data_seed: int = 0,
              publish: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Train ``row`` with the config ``cfg_dict`` and score its reported map on the scored split
    (``clips.test``: the test split, or the validation clips under ``bench.split=val``).

    ``budget`` (compute-matched rows): stop after the first epoch at which the loop's CPU time
    has spent it, instead of after the config's epochs. ``publish(cpu_s, state)``: told the
    loop's CPU time after every epoch (``RUNNING``) and at the end (``DONE``), for the rows that
    follow this one's compute (``budget.FollowedBudget``). Returns ``metrics`` (the
    ``test/...`` or ``val/...`` keys of ``evaluation.summarize_scores``), ``history`` (per
    epoch), ``state`` (the training state dict, for the checkpoint), steps, epochs,
    ``train_cpu_s`` and ``train_wall_s``, ``labeled`` (boxes the row could read) and
    ``unlabeled_clips``.
    """
    cfg = config_mod.from_dict(cfg_dict)
    torch.set_num_threads(threads)
    seed_everything(cfg.train.seed)
    state = make_state(cfg.model, cfg.dmt, cfg.optim, "cpu", seed=cfg.train.seed,
                       sample_rate=cfg.data.sample_rate,
                       init=read_initial_weights(cfg.model), precision=cfg.train.precision)
    rng = np.random.default_rng(cfg.train.seed * 7919 + 1)
    lab_idx, unl_idx = row_indices(clips, row, data_seed)
    labeled, unlabeled = row_streams(clips, cfg, lab_idx, unl_idx, rng)
    to_device = lambda b: to_torch(b, state.device)  # noqa: E731
    history: list[dict[str, float]] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    progress = budget_progress(cfg, budget, cpu0)
    for epoch in range(total_epochs(cfg)):
        stage = stage_of(epoch, cfg)
        metrics = run_epoch(state, cfg, stage, labeled, unlabeled, to_device, progress)
        cpu_s = time.process_time() - cpu0
        history.append(_history_entry(epoch, stage, metrics, cpu_s))
        if publish is not None:
            publish(cpu_s, RUNNING)
        if budget is not None and budget.spent(cpu_s):
            break
    train_cpu, train_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if publish is not None:
        publish(train_cpu, DONE)
    test_batches = ordered_batches(clips, clips.test, SCORE_BATCH)
    scores = evaluation.score_batches(state, test_batches, to_device)
    headline = evaluation.reported_role(state.method, cfg.dmt.eval_model)
    return {
        "metrics": evaluation.summarize_scores(scores, cfg.bench.split, headline),
        "history": history, "state": state.state_dict(), "steps": state.step,
        "epochs": len(history), "train_cpu_s": train_cpu, "train_wall_s": train_wall,
        "labeled": 0 if VARIANTS[row.method].labels == "none" else int(len(lab_idx)),
        "unlabeled_clips": int(len(unl_idx)) if unlabeled is not None and any(
            h["stage"] == 2 for h in history) else 0,
        "reported": headline,
    }
