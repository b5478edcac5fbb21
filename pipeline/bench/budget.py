"""Compute budgets of the compute-matched rows: train until another row's CPU time is spent.

A compute-matched row (``supervised_matched``) trains for the CPU seconds its reference row
(DMT) used, and stops after the first epoch at which its own training loop has used at least
that much. When the reference row has finished, the budget is a number (``FixedBudget``). When
it is still training on another core, the budget follows its progress (``FollowedBudget``):
after each of its epochs the matched row continues while it is behind the reference's CPU time
so far (the final figure can only be larger), and waits (sleeping, which costs no CPU time) when
it has caught up, until the reference moves ahead again or finishes. Both give the same stopping
epoch as running the two rows one after the other, so the pair can train side by side: the
``--quick`` benchmark no longer leaves a core idle while the pair waits for DMT.

Ray-free: the reference's progress comes through two plain callables (``read``/``publish``),
which the Ray shell (``quality.py``) backs with an actor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# A reference row's progress: (CPU seconds so far, state), state one of these.
RUNNING, DONE, FAILED = "running", "done", "failed"
Progress = tuple[float, str]


class ReferenceFailed(RuntimeError):
    """The row whose compute a matched row follows failed: the matched row has no budget."""


@dataclass(frozen=True)
class FixedBudget:
    """A budget known in advance: spent once ``cpu_s`` reaches it."""

    cpu_s: float

    def spent(self, cpu_s: float) -> bool:
        return cpu_s >= self.cpu_s


@dataclass
class FollowedBudget:
    """The final CPU time of a reference row that is still training.

    ``read()`` returns the reference's ``(cpu_s, state)``; ``spent(cpu_s)`` blocks (polling
    every ``poll_s`` seconds) only while the answer is not yet known: the matched row has used
    at least the reference's CPU time so far and the reference is still running."""

    reference: str
    read: Callable[[], Progress]
    poll_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep

    def spent(self, cpu_s: float) -> bool:
        while True:
            ref_cpu_s, state = self.read()
            if state == FAILED:
                raise ReferenceFailed(f"{self.reference} failed, so the row matching its "
                                      "compute has no budget; rerun the benchmark to retry both")
            if state == DONE:
                return cpu_s >= ref_cpu_s
            if ref_cpu_s > cpu_s:  # the reference's final CPU time is larger still
                return False
            self.sleep(self.poll_s)


def budget_for(reference: str, finished_cpu_s: float | None,
               read: Callable[[], Progress] | None) -> FixedBudget | FollowedBudget:
    """A fixed budget when the reference row has finished, else one that follows it."""
    if finished_cpu_s is not None:
        return FixedBudget(finished_cpu_s)
    if read is None:
        raise ValueError(f"{reference} has not finished and nothing reports its progress")
    return FollowedBudget(reference, read)
