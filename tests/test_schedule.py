"""The learning-rate schedule (``optim.schedule``): hand-checked factors, the rate every step
gets, a resumed run's rate, and the compute-matched row that anneals over its CPU budget."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import config as C
from pipeline.bench import budget
from pipeline.bench.memory import ClipArrays
from pipeline.bench.plan import BenchRow
from pipeline.engine.loop import planned_steps, step_progress
from pipeline.engine.schedule import lr_factor

REPO = Path(__file__).resolve().parents[1]


def test_cosine_factor_on_hand_checked_points():
    assert [lr_factor("cosine", p) for p in (0.0, 0.5, 1.0)] == pytest.approx([1.0, 0.5, 0.0])
    assert lr_factor("cosine", 0.25) == pytest.approx((1 + math.sqrt(0.5)) / 2)  # 0.854
    assert lr_factor("cosine", 1.7) == lr_factor("cosine", 1.0)  # held at 0 past the plan
    assert lr_factor("cosine", -0.1) == 1.0
    assert lr_factor("constant", 0.9) == 1.0
    with pytest.raises(ValueError, match="optim.schedule: 'step'"):
        lr_factor("step", 0.5)


def test_the_config_refuses_an_unknown_schedule():
    with pytest.raises(C.ConfigError, match="optim.schedule"):
        C.load(REPO / "jobs/configs/smoke.yaml", ["optim.schedule=linear"])


def _clips(n: int = 24, test: int = 4) -> ClipArrays:
    rng = np.random.default_rng(0)
    return ClipArrays(
        ids=np.array([f"c{i:03d}" for i in range(n)]), is_test=np.arange(n) >= n - test,
        frame=rng.integers(0, 256, (n, 3, 64, 64), dtype=np.uint8),
        audio=rng.standard_normal((n, 32000)).astype(np.float32),
        map=(rng.random((n, 224, 224)) > 0.7).astype(np.float16), has_boxes=np.full(n, True))


def _cfg(schedule: str, *extra: str):
    return C.load(REPO / "jobs/configs/smoke.yaml", [
        "dmt.method=supervised", "train.stage1_epochs=0", "train.stage2_epochs=2",
        "train.steps_per_epoch=2", "optim.lr=0.004", f"optim.schedule={schedule}", *extra])


def test_every_step_gets_the_rate_of_its_progress_and_the_rate_reaches_training():
    """4 planned steps: the rate before step k (0-based) is lr (1 + cos(pi k / 4)) / 2, so
    the last steps of the two epochs run at 0.854 lr and 0.146 lr; constant keeps lr."""
    from pipeline.bench.runner import train_row

    row = BenchRow("supervised", 0.5, 0, ("A",))
    runs = {s: train_row(C.to_dict(_cfg(s)), row, _clips()) for s in ("constant", "cosine")}
    assert [h["lr"] for h in runs["constant"]["history"]] == [0.004, 0.004]
    assert [h["lr"] for h in runs["cosine"]["history"]] == pytest.approx(
        [0.004 * (1 + math.cos(math.pi / 4)) / 2, 0.004 * (1 + math.cos(3 * math.pi / 4)) / 2])
    # the annealed steps train different weights
    a, b = (runs[s]["state"]["students"][0] for s in ("constant", "cosine"))
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_a_resumed_run_gets_its_rate_from_the_step_alone():
    """No scheduler state: a state loaded at step 3 of 4 trains its next step at the rate an
    uninterrupted run has there, whatever rate its optimiser was saved with."""
    from pipeline.dmt.state import make_state
    from pipeline.engine.loop import run_epoch

    cfg = _cfg("cosine", "train.steps_per_epoch=1", "train.stage2_epochs=4")
    assert planned_steps(cfg) == 4 and step_progress(3, cfg) == 0.75
    state = make_state(cfg.model, cfg.dmt, cfg.optim, "cpu", sample_rate=cfg.data.sample_rate)
    state.step = 3
    state.optimizer.param_groups[0]["lr"] = 123.0  # as a checkpoint of another schedule
    from pipeline.bench.memory import endless_batches
    from pipeline.engine.batches import to_torch

    clips = _clips()
    batches = endless_batches(clips, clips.pool, 4, "gt", np.random.default_rng(0))
    out = run_epoch(state, cfg, 2, batches, None, lambda b: to_torch(b, state.device))
    assert out["train/lr"] == pytest.approx(0.004 * lr_factor("cosine", 0.75))
    assert state.step == 4


def test_a_matched_row_anneals_over_its_budget_which_must_be_known():
    from pipeline.bench.runner import budget_progress

    cosine, constant = _cfg("cosine"), _cfg("constant")
    assert budget_progress(constant, budget.FixedBudget(10.0), 0.0) is None
    assert budget_progress(cosine, None, 0.0) is None  # planned in steps
    progress = budget_progress(cosine, budget.FixedBudget(1e6), time.process_time())
    assert 0.0 <= progress() < 1e-3
    follower = budget.FollowedBudget("dmt", lambda: (0.0, budget.RUNNING))
    with pytest.raises(ValueError, match="optim.schedule=cosine .* must be known"):
        budget_progress(cosine, follower, 0.0)


def test_under_an_annealed_schedule_a_matched_row_waits_for_its_reference():
    from pipeline.bench.quality import _next_ready

    dmt = BenchRow("dmt", 0.03, 0, ("A",))
    pair = BenchRow("supervised_matched", 0.03, 0, ("A",))
    sup = BenchRow("supervised", 0.03, 1, ("A",))
    assert pair.budget_of == dmt.key
    assert _next_ready([pair, sup], {}, {dmt.key}) == pair  # trains beside DMT
    assert _next_ready([pair, sup], {}, {dmt.key}, follow=False) == sup
    assert _next_ready([pair], {}, {dmt.key}, follow=False) is None  # waits
    assert _next_ready([pair, sup], {dmt.key: {}}, set(), follow=False) == pair
