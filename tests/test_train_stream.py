"""The training streams' order (``pipeline.train.data.cycle_batches``) on a small in-memory
shard: seeded windows of file-order rows, the next pass opened before the last batch of a pass
is drawn, and its errors handed to the consumer."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pipeline.train.data import cycle_batches


class Shard:
    """What ``cycle_batches`` uses of a Ray Train dataset shard: ``iter_batches`` over rows
    0..n-1 in file order, in blocks of ``batch_size`` rows; records when each pass opens."""

    def __init__(self, n: int, fail_on_pass: int | None = None):
        self.n, self.fail_on_pass = n, fail_on_pass
        self.opened: list[int] = []  # batches drawn by the consumer when each pass opened
        self.drawn = 0
        self.lock = threading.Lock()

    def iter_batches(self, batch_size, batch_format, prefetch_batches):
        assert batch_format == "numpy"
        with self.lock:
            self.opened.append(self.drawn)
            if self.fail_on_pass == len(self.opened):
                raise OSError("shard file vanished")
        for start in range(0, self.n, batch_size):
            yield {"x": np.arange(start, min(self.n, start + batch_size))}


def _expected_pass(n: int, window: int, batch: int, seed: int, epoch: int) -> list[list[int]]:
    """The order by hand: each window permuted by the pass's RNG, remainders carried over."""
    rng = np.random.default_rng([seed, epoch])
    out, carry = [], []
    for start in range(0, n, window):
        rows = list(np.arange(start, min(n, start + window))[rng.permutation(
            min(n, start + window) - start)])
        rows = carry + rows
        full = len(rows) - len(rows) % batch
        out += [rows[i:i + batch] for i in range(0, full, batch)]
        carry = rows[full:]
    return out + ([carry] if carry else [])


def _draw(shard: Shard, stream, k: int) -> list[list[int]]:
    got = []
    for _ in range(k):
        got.append(next(stream)["x"].tolist())
        shard.drawn += 1
    return got


def test_batches_are_the_seeded_windows_pass_after_pass():
    shard = Shard(10)
    stream = cycle_batches(shard, batch_size=3, name="unlabeled", seed=5, window=4)
    first, second = _expected_pass(10, 4, 3, 5, 0), _expected_pass(10, 4, 3, 5, 1)
    assert [len(b) for b in first] == [3, 3, 3, 1]
    assert _draw(shard, stream, len(first) + len(second)) == first + second
    assert first != second  # each pass its own permutation
    assert sorted(sum(first, [])) == list(range(10))  # every row once per pass


def test_the_next_pass_opens_before_the_last_batches_of_a_pass_are_drawn():
    import time

    shard = Shard(10)
    stream = cycle_batches(shard, batch_size=3, name="unlabeled", seed=0, window=4)
    _draw(shard, stream, 3)  # pass 1 is 4 batches; its last window is being drawn
    deadline = time.monotonic() + 10
    while len(shard.opened) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the next pass opens in a background thread
    assert len(shard.opened) == 2 and shard.opened[1] <= 3  # before batch 4 was drawn
    # the rest of pass 1, pass 2 (from the pass opened ahead) and the start of pass 3
    expected = [_expected_pass(10, 4, 3, 0, epoch) for epoch in range(3)]
    assert _draw(shard, stream, 6) == expected[0][3:] + expected[1] + expected[2][:1]


def test_an_error_opening_the_next_pass_reaches_the_consumer():
    shard = Shard(6, fail_on_pass=2)
    stream = cycle_batches(shard, batch_size=3, name="unlabeled", seed=0, window=6)
    _draw(shard, stream, 2)  # the whole first pass
    with pytest.raises(OSError, match="shard file vanished"):
        next(stream)


def test_an_empty_shard_is_a_clear_error():
    with pytest.raises(RuntimeError, match="'unlabeled' split gave this worker no rows"):
        next(cycle_batches(Shard(0), batch_size=3, name="unlabeled"))


class StalledShard(Shard):
    """A shard whose next pass never delivers (Ray Data waiting for CPUs it cannot get)."""

    def __init__(self, n: int, stall_on_pass: int):
        super().__init__(n)
        self.stall_on_pass = stall_on_pass
        self.release = threading.Event()

    def iter_batches(self, batch_size, batch_format, prefetch_batches):
        if len(self.opened) + 1 == self.stall_on_pass:
            self.opened.append(self.drawn)
            self.release.wait()  # until the test ends
            return
        yield from super().iter_batches(batch_size, batch_format, prefetch_batches)


def test_a_stream_that_stops_delivering_stops_the_run_after_the_capacity_wait():
    import time

    from pipeline.errors import ClusterCapacityError

    shard = StalledShard(6, stall_on_pass=2)
    stream = cycle_batches(shard, batch_size=3, name="unlabeled", seed=0, window=6, wait_s=1.0)
    try:
        _draw(shard, stream, 2)  # the whole first pass arrives
        t0 = time.monotonic()
        with pytest.raises(ClusterCapacityError, match=r"'unlabeled' stream delivered no rows "
                                                       r"for 1 s \(train.capacity_wait_s\)"):
            next(stream)
        assert 0.9 < time.monotonic() - t0 < 10
    finally:
        shard.release.set()


def test_a_ray_data_stream_that_cannot_be_scheduled_stops_instead_of_hanging(ray_session):
    """Real Ray Data, whose tasks need a whole CPU while an actor holds 1.5 of the session's 2
    (as Train workers do): Ray Data logs "Cluster resources are not enough to run any task
    ... The job may hang forever" and waits; the stream stops after its wait instead."""
    import time

    import ray
    import ray.data

    from pipeline.errors import ClusterCapacityError

    @ray.remote(num_cpus=1.5)
    class Holder:
        def ready(self) -> bool:
            return True

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    ds = ray.data.range(8).map_batches(lambda b: b, num_cpus=1)
    stream = cycle_batches(ds, batch_size=2, name="unlabeled", window=4, wait_s=3.0)
    t0 = time.monotonic()
    try:
        with pytest.raises(ClusterCapacityError, match="delivered no rows for 3 s"):
            next(stream)
        assert time.monotonic() - t0 < 30
    finally:
        ray.kill(holder)  # the CPU comes back: Ray Data finishes and its threads end
        time.sleep(2)
        del stream
