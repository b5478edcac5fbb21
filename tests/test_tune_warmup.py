"""A sweep's shared stage-1 warm-up (pipeline.tune.warmup): which keys stage 1 never reads, the
stream positions a checkpoint carries, and a trial started from the warm-up repeating, number
for number, the trial that warmed up itself."""

from __future__ import annotations

import pytest
import torch

from pipeline import config as C
from pipeline import tracking
from pipeline.dmt import stage1_step
from pipeline.engine.loop import weights_digest
from pipeline.train.data import counted
from pipeline.tune import sweep, warmup

try:
    from tests.test_dmt import scene_batch, state_for
except ImportError:  # pytest run without the repo root on sys.path
    from test_dmt import scene_batch, state_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STAGE2_VALUES = {"delta": 0.2, "tau": 0.9, "ema_decay": 0.5, "lambda_u": 3.0,
                 "noise_filtering": False, "ipl": False, "ema": False}


def _after_stage1(**dmt_kw) -> tuple[list[str], torch.Tensor]:
    """Weights of both pairs and the augmentation generator after two stage-1 steps."""
    state = state_for("dmt", **dmt_kw)
    for seed in range(2):
        stage1_step(state, scene_batch(4, seed))
    return ([weights_digest(m) for m in (*state.teachers, *state.students)],
            state.generator.get_state())


def test_stage1_is_the_same_whatever_the_stage2_only_keys_say():
    assert {f"dmt.{k}" for k in STAGE2_VALUES} == warmup.STAGE2_ONLY_KEYS
    base, changed = _after_stage1(), _after_stage1(**STAGE2_VALUES)
    assert base[0] == changed[0] and torch.equal(base[1], changed[1])
    # a key stage 1 does read changes it: the comparison can tell
    assert _after_stage1(lambda_c=0.5)[0] != base[0]
    assert _after_stage1(color_jitter=0.0)[0] != base[0]


def test_only_stage2_keys_share_the_warmup_and_its_grace_epochs():
    cfg = C.load(None, ["train.stage1_epochs=4", "train.stage2_epochs=6", "tune.grace_period=2"])
    space = {"dmt.tau": {"uniform": [0.2, 0.8]}, "dmt.ema_decay": {"uniform": [0.9, 0.99]}}
    assert warmup.shares_warmup(cfg, space) and sweep.grace_epochs(cfg, space, 10) == 6
    for other in ("dmt.lambda_c", "dmt.color_jitter", "optim.lr"):  # stage 1 reads these
        wider = {**space, other: {"uniform": [0.1, 0.5]}}
        assert not warmup.shares_warmup(cfg, wider) and sweep.grace_epochs(cfg, wider, 10) == 2
    C.set_key(cfg, "optim.schedule", "cosine")  # the warm-up run would anneal too early
    assert not warmup.shares_warmup(cfg, space) and sweep.grace_epochs(cfg, space, 10) == 6
    C.set_key(cfg, "optim.schedule", "constant")
    C.set_key(cfg, "tune.share_warmup", False)
    assert not warmup.shares_warmup(cfg, space) and sweep.grace_epochs(cfg, space, 10) == 6
    ezvsl = C.load(None, ["dmt.method=ezvsl"])
    assert not warmup.shares_warmup(ezvsl, space)  # no warm-up to share
    assert sweep.epochs_trained([{"epochs": 10}, {"epochs": 6}], shared_stage1=4) == 12


def test_counted_skips_the_batches_drawn_before_and_counts_on():
    drawn = {"labeled": 2}
    stream = counted(iter(range(10)), drawn, "labeled")
    assert [next(stream) for _ in range(3)] == [2, 3, 4] and drawn == {"labeled": 5}
    fresh: dict[str, int] = {}
    next(counted(iter("ab"), fresh, "unlabeled"))
    assert fresh == {"unlabeled": 1}


VARYING = ("train/data_wait_frac", "train/samples_per_s", "time/")  # wall-clock figures
# the run's chosen model, logged once at its end: the warm-up and the trial each choose their own
SUMMARY = ("model/",)


def _history(uri: str, run_id: str) -> dict[tuple[str, int], float]:
    run = tracking.get_run(uri, run_id)
    return {(key, step): value if value == value else "nan"  # NaN == NaN here
            for key in run.data.metrics if not key.startswith(VARYING + SUMMARY)
            for step, value in tracking.metric_history(uri, run_id, key)}


@pytest.mark.slow
def test_a_trial_from_the_shared_warmup_repeats_the_trial_that_warmed_up_itself(smoke_base,
                                                                               tmp_path):
    from pipeline.train.driver import fit

    cfg = C.from_dict(C.to_dict(smoke_base), [
        f"train.storage={tmp_path / 'ray'}", "train.stage1_epochs=2", "train.stage2_epochs=2",
        "train.eval_every=1", "tracking.heatmaps=0", "tracking.system_metrics=false",
        "dmt.tau=0.3"])  # as a sweep runs its trials (eval_every 1), one sampled value
    quiet = {"say": lambda *_: None, "eval_split": "val"}
    alone = fit(cfg, run_name="alone", **quiet)
    warm = fit(warmup.warmup_config(cfg), run_name="warmup", **quiet)
    trial = fit(cfg, run_name="trial", **quiet,
                warm_start={"checkpoint": str(warm.checkpoint_path), "run_id": warm.run_id})
    uri = alone.tracking_uri
    alone_h, warm_h, trial_h = (_history(uri, o.run_id) for o in (alone, warm, trial))
    assert {s for _, s in warm_h} == {1, 2} and {s for _, s in trial_h} == {3, 4}
    assert warm_h == {k: v for k, v in alone_h.items() if k[1] <= 2}  # stage 1: the same run
    assert trial_h == {k: v for k, v in alone_h.items() if k[1] > 2}  # stage 2: the same numbers
    assert ("train/kept", 3) in trial_h  # DMT's stage-2 statistics are among them
    tags = tracking.get_run(uri, trial.run_id).data.tags
    assert tags["tune.warmup_run_id"] == warm.run_id and tags["warm_start_epoch"] == "2"
