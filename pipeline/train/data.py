"""Shards -> the Ray Datasets that feed Ray Train: one per split, decoded off the training
critical path.

The decoding (``engine.batches.ToTrainingBatch``: JPEG -> resized uint8 frame, PCM -> float
waveform, boxes -> 224x224 map) runs in Ray Data ``map_batches`` tasks that stream ahead of the
training loop; the loop itself only casts uint8 to float.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import ray.data
from ray.data.expressions import col

from pipeline import config as config_mod
from pipeline.data import reader
from pipeline.data.id_lists import load_id_list
from pipeline.engine.batches import MAP_KEY, ToTrainingBatch
from pipeline.errors import ClusterCapacityError
from pipeline.methods import method_of


def ray_dataset(path: str | os.PathLike, *, columns: list[str] | None = None,
                **read_kwargs: Any) -> ray.data.Dataset:
    """``ray.data.read_parquet`` over the checked shard files (``reader.shard_files``; one
    footer reader on small machines unless ``RAY_DATA_PARQUET_FOOTER_NUM_ACTORS`` is set)."""
    os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1")
    fs, files = reader.filesystem_and_paths(reader.shard_files(path))
    if not files:
        raise FileNotFoundError(f"{path}: no shards")
    if fs is not None:  # the tasks get the filesystem (endpoint, options) with the paths
        read_kwargs.setdefault("filesystem", fs)
    ds = ray.data.read_parquet(files, **read_kwargs)
    # Ray Data 2.60 pushes the projection down into the read (`columns=` is deprecated)
    return ds.select_columns(columns) if columns else ds


def split_dataset(shards: str | os.PathLike, split: str, image_size: int,
                  data_cpus: float = 0.5, batch_size: int = 32,
                  val_ids: list[str] | None = None):
    """A lazy Ray Dataset of one split's training batches (nothing runs until iterated).

    With ``val_ids``, split "val" is those labeled rows and "labeled" is the rest.
    """
    ds = ray_dataset(shards, columns=reader.BATCH_COLUMNS, num_cpus=data_cpus)
    # predicate expressions: Ray pushes them down into the Parquet scan
    if split == "val":
        ds = ds.filter(expr=(col("split") == "labeled") & col("id").is_in(list(val_ids or [])))
    elif split == "labeled" and val_ids:
        ds = ds.filter(expr=(col("split") == "labeled") & col("id").not_in(list(val_ids)))
    else:
        ds = ds.filter(expr=col("split") == split)
    return ds.map_batches(ToTrainingBatch(image_size, MAP_KEY[split]), batch_size=batch_size,
                          batch_format="numpy", num_cpus=data_cpus)


def validation_ids(cfg: config_mod.Config) -> list[str]:
    """Labeled ids held out for model selection: ``data.val_list`` or a seeded
    ``data.val_fraction`` of the labeled ids."""
    if cfg.data.val_list:
        return sorted(load_id_list(cfg.data.val_list))
    shards = config_mod.data_paths(cfg.data).shards
    return reader.carve_validation(reader.split_ids(shards, "labeled"), cfg.data.val_fraction,
                                   cfg.train.seed)


def eval_splits_of(cfg: config_mod.Config, eval_split: str = "test") -> list[str]:
    """The splits a run scores every evaluation epoch: ``eval_split``, and before it the
    validation split when a test-split run selects its model there (``train.select_metric``);
    a sweep's trials score validation only."""
    if eval_split == "test" and cfg.train.select_metric:
        return ["val", "test"]
    return [eval_split]


def build_datasets(cfg: config_mod.Config,
                   eval_splits: str | list[str] | tuple[str, ...] = ("test",)) -> dict[str, Any]:
    """The datasets of a run: labeled (without the validation ids when "val" is scored),
    unlabeled (methods that read it), and each of ``eval_splits``."""
    ctx = ray.data.DataContext.get_current()
    # Progress bars of the feeding datasets would interleave with the per-epoch progress lines.
    ctx.enable_progress_bars = False
    # Blocks in file order, not in the order read tasks finish: with the seeded local shuffle,
    # the same seed then gives the same batches (without it two runs of one config differed
    # from the first epoch on, and Tune trials compared noise from the data order).
    ctx.execution_options.preserve_order = True
    # decoding on the CPU nodes (data.nodes), apart from the GPU training workers
    ctx.execution_options.label_selector = config_mod.label_selector(cfg.data.nodes)
    shards = config_mod.data_paths(cfg.data).shards
    method = method_of(cfg.dmt.method)
    if reader.split_counts(shards)["labeled"] == 0 and method.reads_boxes:
        raise ValueError(f"{shards}: no labeled clips (split 'labeled'); check data.lists")
    eval_splits = [eval_splits] if isinstance(eval_splits, str) else list(eval_splits)
    for split in ["labeled", *(s for s in eval_splits if s != "val")]:
        if bad := reader.boxless_ids(shards, split):
            raise ValueError(f"{shards}: {len(bad)} {split} rows have no box (e.g. {bad[:3]}); "
                             f"re-run `dmt preprocess`, which moves them out of the split")
    names = ["labeled"] + (["unlabeled"] if method.reads_unlabeled else []) + eval_splits
    val_ids = validation_ids(cfg) if "val" in eval_splits else None
    if "val" in eval_splits and not val_ids:
        raise ValueError("validation split is empty: set data.val_fraction > 0 or data.val_list")
    datasets = {name: split_dataset(shards, name, cfg.model.image_size, cfg.train.data_cpus,
                                    cfg.data.decode_batch_size, val_ids) for name in names}
    # The labeled and evaluation splits are small (a few % of the clips) and read every epoch:
    # decode them once, here. Only the unlabeled stream is decoded on the fly, so at most one
    # dataset at a time needs Ray Data CPUs (Ray Data splits the CPUs left beside the Train
    # workers between running datasets in whole CPUs: on a 2-CPU machine two would starve).
    for name in names:
        if name != "unlabeled":
            datasets[name] = datasets[name].materialize()
    return datasets


SHUFFLE_WINDOW = 256  # rows shuffled together (a local shuffle: memory stays bounded)
# windows a stream holds beyond the one it is cutting into batches (plus Ray Data's one
# prefetched): at the demo's sizes a whole pass, so the next pass opens as this one starts
LOOKAHEAD = 2


def cycle_batches(shard, batch_size: int, name: str, seed: int = 0,
                  window: int = SHUFFLE_WINDOW, wait_s: float | None = None) -> Iterator[dict]:
    """Endless shuffled batches from a Ray Train dataset shard; a new pass starts when one ends.

    The shuffle is ours and depends only on the rows' order and the seed: rows arrive in file
    order (``preserve_order``) in windows of exactly ``window`` rows, each permuted by a seeded
    RNG, then cut into batches (the remainder carries over). Ray's own local shuffle samples
    from whatever blocks have arrived, and where Ray Data cuts blocks varies from run to run:
    the same seed then gave different stage-2 runs. Every worker consumes its shard at the same
    rate (one batch per step), so the passes of the streaming split stay in step across workers.

    The next pass is opened as soon as this one has handed over its last window (``LOOKAHEAD``
    windows are held ahead), so Ray Data's start of a pass (the streaming split's coordinator,
    planning, listing and reading files, the first window: about 2.4 s a pass on 2 cores)
    overlaps the steps instead of stalling the trainer at every pass boundary. Only when the
    data is asked for changes, not what it delivers.

    Windows are read in a background thread and each is awaited at most ``wait_s`` seconds
    (``train.capacity_wait_s``; None: forever): Ray Data waits forever for CPUs it cannot get
    (a node lost, or CPUs free in total but not on one node), and the run then stops with
    :class:`~pipeline.errors.ClusterCapacityError` instead of hanging.
    """
    epoch = 0
    opened: _Pass | None = None
    while True:
        rng = np.random.default_rng([seed, epoch])
        blocks = opened or _Pass(shard, window, name, wait_s)
        block = blocks.next()
        opened = None
        ahead: collections.deque[dict] = collections.deque()
        carry: dict[str, np.ndarray] | None = None
        rows = 0
        while block is not None:
            # hold up to LOOKAHEAD windows (Ray Data prefetches one more): a pass that ends
            # within them opens the next one now, that many windows before it is needed
            while blocks is not None and len(ahead) < LOOKAHEAD:
                nxt = blocks.next()
                if nxt is None:
                    blocks, opened = None, _Pass(shard, window, name, wait_s)
                else:
                    ahead.append(nxt)
            n = len(next(iter(block.values())))
            rows += n
            perm = rng.permutation(n)
            block = {k: np.asarray(v)[perm] for k, v in block.items()}
            if carry is not None:
                block = {k: np.concatenate([carry[k], v]) for k, v in block.items()}
            n = len(next(iter(block.values())))
            full = n - n % batch_size
            for start in range(0, full, batch_size):
                yield {k: v[start:start + batch_size] for k, v in block.items()}
            carry = {k: v[full:] for k, v in block.items()} if full < n else None
            block = ahead.popleft() if ahead else None
        if carry is not None:
            yield carry  # the pass's last, smaller batch
        if rows == 0:
            raise RuntimeError(f"the {name!r} split gave this worker no rows; preprocess more "
                               f"clips or use fewer workers")
        epoch += 1


_END = object()


class _Pass:
    """One pass over ``shard`` in windows of ``window`` rows, read by a daemon thread one
    window per ``next()`` (the first at once: a pass opened ahead of use has its first window
    ready), so no more rows are held than a synchronous read holds. ``next()`` returns the
    next window (None at the end), re-raises what the reader raised, and raises
    ClusterCapacityError when no window comes within ``wait_s`` seconds."""

    def __init__(self, shard, window: int, name: str, wait_s: float | None):
        self.name, self.wait_s = name, wait_s
        self._requests: queue.Queue = queue.Queue()
        self._results: queue.Queue = queue.Queue()
        self._requests.put(True)
        self._asked = True
        threading.Thread(target=self._read, args=(shard, window), daemon=True,
                         name=f"dmt-{name}-pass").start()

    def _read(self, shard, window: int) -> None:
        try:
            blocks = iter(shard.iter_batches(batch_size=window, batch_format="numpy",
                                             prefetch_batches=1))
            while self._requests.get():
                block = next(blocks, _END)
                self._results.put(block)
                if block is _END:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer by next()
            self._results.put(exc)

    def next(self) -> dict | None:
        if not self._asked:
            self._requests.put(True)
        self._asked = False
        try:
            item = self._results.get(timeout=self.wait_s)
        except queue.Empty:
            raise ClusterCapacityError(
                f"the {self.name!r} stream delivered no rows for {self.wait_s:g} s "
                f"(train.capacity_wait_s): Ray Data could not schedule its tasks (a node "
                f"lost, or CPUs free in total but not a whole one on any node)") from None
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def __del__(self) -> None:
        self._requests.put(False)  # a pass dropped early: its reader thread ends


def counted(stream: Iterator[dict], drawn: dict[str, int], name: str) -> Iterator[dict]:
    """``stream``, after skipping the ``drawn[name]`` batches an earlier run of this job drew
    from it (its checkpoint says how many), counting every batch drawn in ``drawn[name]``.

    The stream's order is fixed by its seed (``cycle_batches``), so a run resumed from a
    checkpoint, or a sweep trial started from the shared warm-up, sees the batches the
    uninterrupted run would have: the same numbers, epoch by epoch. The skipped batches are
    read and dropped (a fraction of the time it took to train on them)."""
    for _ in range(drawn.get(name, 0)):
        next(stream)
    drawn.setdefault(name, 0)
    for batch in stream:
        drawn[name] += 1
        yield batch

