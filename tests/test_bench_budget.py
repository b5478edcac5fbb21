"""Compute budgets: a matched row that follows a running reference stops where it would have
stopped after it, and a failed reference stops it with a clear error."""

from __future__ import annotations

import pytest

from pipeline.bench import budget


def _stop_epoch(spent, epoch_costs: list[float]) -> int:
    """The epoch (1-based) after which a loop of these per-epoch CPU costs stops."""
    cpu = 0.0
    for epoch, cost in enumerate(epoch_costs, 1):
        cpu += cost
        if spent(cpu):
            return epoch
    return len(epoch_costs)


class Reference:
    """A reference row training on another core: its CPU time advances by ``rate`` seconds per
    poll of the follower (the follower's sleeps), epoch by epoch, until ``total``."""

    def __init__(self, epochs: list[float], rate: float) -> None:
        self.epochs, self.rate, self.clock, self.sleeps = epochs, rate, 0.0, 0

    def read(self) -> budget.Progress:
        done, cpu = 0.0, 0.0
        for cost in self.epochs:  # progress is published at epoch ends only
            if cpu + cost > self.clock:
                return done, budget.RUNNING
            cpu += cost
            done = cpu
        return cpu, budget.DONE

    def sleep(self, _s: float) -> None:
        self.sleeps += 1
        self.clock += self.rate


@pytest.mark.parametrize("rate", [0.5, 3.0, 50.0])
def test_following_a_running_reference_stops_where_a_fixed_budget_would(rate):
    ref_epochs = [17.0] * 4 + [38.0] * 20  # DMT: 4 cheap stage-1 epochs, then stage 2
    matched_epochs = [17.0] * 200  # the matched pair: stage-1 epochs until the budget
    total = sum(ref_epochs)
    expected = _stop_epoch(budget.FixedBudget(total).spent, matched_epochs)
    ref = Reference(ref_epochs, rate)
    followed = budget.FollowedBudget("dmt@0.03#seed0", ref.read, sleep=ref.sleep)
    # the follower's own CPU time advances only as it trains; the reference advances while the
    # follower sleeps (it is ahead) -- whatever the relative speed, the stop is the same:
    # the first epoch e with 17 e >= 4 x 17 + 20 x 38 = 828
    assert _stop_epoch(followed.spent, matched_epochs) == expected == 49
    assert ref.sleeps > 0  # it did wait for the reference at least once


def test_a_follower_behind_its_reference_never_waits():
    ref = Reference([10.0] * 10, rate=1.0)
    ref.clock = 60.0  # six epochs published
    followed = budget.FollowedBudget("dmt", ref.read, sleep=ref.sleep)
    assert followed.spent(59.0) is False and ref.sleeps == 0


def test_a_failed_reference_stops_its_follower_with_the_reason():
    followed = budget.FollowedBudget("dmt@0.03#seed1", lambda: (12.0, budget.FAILED))
    with pytest.raises(budget.ReferenceFailed, match=r"dmt@0\.03#seed1 failed"):
        followed.spent(1.0)


def test_budget_for_is_fixed_once_the_reference_finished():
    assert budget.budget_for("dmt", 900.0, None) == budget.FixedBudget(900.0)
    assert isinstance(budget.budget_for("dmt", None, lambda: (0.0, budget.RUNNING)),
                      budget.FollowedBudget)
    with pytest.raises(ValueError, match="dmt has not finished"):
        budget.budget_for("dmt", None, None)
