"""The benchmark's clips, decoded once into arrays, and the batches every row trains on.

A quality benchmark trains dozens of small models on the same few thousand clips; decoding the
shards once (``ToTrainingBatch``, the same conversion the Ray Data pipeline applies) and sharing
the arrays through Ray's object store takes decoding out of every row's time, so rows differ only
in what they compute. Ray-free: the arrays and iterators are plain numpy.

The synthetic benchmark knows every clip's box, so the labeled set of a row is chosen here, as a
fraction of the training pool (every non-test clip), from the row's seed; the nested choice (1%
within 3% within 10%, for one seed) makes Table C's rows differ only in how many labels they
get.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from pipeline.data import reader
from pipeline.engine.batches import ToTrainingBatch


@dataclass
class ClipArrays:
    """All clips of a shard folder. ``frame`` (N, 3, S, S) uint8, ``audio`` (N, T) float32,
    ``map`` (N, 224, 224) float16 ground-truth maps, ``has_boxes`` (N,) bool, ``ids`` (N,) str,
    ``is_test`` (N,) bool."""

    ids: np.ndarray
    is_test: np.ndarray
    frame: np.ndarray
    audio: np.ndarray
    map: np.ndarray
    has_boxes: np.ndarray

    @property
    def pool(self) -> np.ndarray:
        """Indices of the training pool (every non-test clip), in id order."""
        idx = np.flatnonzero(~self.is_test)
        return idx[np.argsort(self.ids[idx], kind="stable")]

    @property
    def test(self) -> np.ndarray:
        idx = np.flatnonzero(self.is_test)
        return idx[np.argsort(self.ids[idx], kind="stable")]


def load_clips(shards: str | os.PathLike, image_size: int, chunk: int = 64) -> ClipArrays:
    """Decode every row of ``shards`` (frames squashed to ``image_size``), in file order."""
    convert = ToTrainingBatch(image_size, "gt")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("id", "split", "frame", "audio", "gt",
                                                           "has_boxes")}
    for out in reader.iter_batches(shards, lambda c: {**convert(c), "split": c["split"]},
                                   batch_size=chunk):
        for key in parts:
            parts[key].append(np.asarray(out[key]))
    if not parts["id"]:
        raise ValueError(f"{shards}: no rows to benchmark on")
    return ClipArrays(ids=np.concatenate(parts["id"]),
                      is_test=np.concatenate(parts["split"]).astype(str) == "test",
                      frame=np.concatenate(parts["frame"]), audio=np.concatenate(parts["audio"]),
                      map=np.concatenate(parts["gt"]).astype(np.float16),
                      has_boxes=np.concatenate(parts["has_boxes"]))


def hold_out_validation(clips: ClipArrays, n: int, seed: int) -> ClipArrays:
    """The training pool with ``n`` clips (drawn by ``seed``) moved into the scored split, which
    then holds only them: the test clips are dropped, so nothing chosen on these scores has
    seen the test split. Row subsets are then drawn from the remaining pool."""
    pool = clips.pool
    if not 0 < n < len(pool):
        raise ValueError(f"bench.val_clips={n}: the training pool has {len(pool)} clips")
    val = np.random.default_rng([seed, 2]).permutation(pool)[:n]
    keep = np.flatnonzero(~clips.is_test)  # every training-pool clip, validation included
    return ClipArrays(ids=clips.ids[keep], is_test=np.isin(keep, val), frame=clips.frame[keep],
                      audio=clips.audio[keep], map=clips.map[keep],
                      has_boxes=clips.has_boxes[keep])


def labeled_subset(clips: ClipArrays, fraction: float, seed: int | list[int] = 0
                   ) -> np.ndarray:
    """The first ``round(fraction * pool)`` clips (at least 1) of the permutation of the pool
    that ``seed`` draws, so for one seed a smaller fraction's subset lies inside a larger
    one's. Only clips with boxes."""
    pool = clips.pool[clips.has_boxes[clips.pool]]
    if not len(pool):
        raise ValueError("the training pool has no clips with boxes: the quality benchmark "
                         "needs a dataset that knows every box (data.format=synth)")
    order = np.random.default_rng(seed).permutation(pool)
    n = min(len(order), max(1, round(fraction * len(clips.pool))))
    return np.sort(order[:n])


def unlabeled_subset(clips: ClipArrays, labeled: np.ndarray, multiple: float,
                     seed: int | list[int] = 0) -> np.ndarray:
    """``round(multiple * len(labeled))`` pool clips outside ``labeled``: the first ones of one
    fixed permutation of the pool, so a smaller pool lies inside a larger one (Table C's
    unlabeled axis); ``multiple`` 0 gives every pool clip outside ``labeled``."""
    rest = np.setdiff1d(clips.pool, labeled)
    if not multiple:
        return rest
    n = round(multiple * len(labeled))
    if n > len(rest):
        raise ValueError(f"an unlabeled pool of {multiple:g}x {len(labeled)} labeled clips needs "
                         f"{n} clips; the training pool has {len(rest)} more")
    order = np.random.default_rng([*np.atleast_1d(seed), 1]).permutation(clips.pool)
    return np.sort(order[np.isin(order, rest)][:n])


def batch_of(clips: ClipArrays, idx: np.ndarray, map_key: str | None) -> dict[str, np.ndarray]:
    """One batch in the layout of ``ToTrainingBatch`` (the map under ``map_key``, float32)."""
    out = {"id": clips.ids[idx], "frame": clips.frame[idx], "audio": clips.audio[idx],
           "has_boxes": clips.has_boxes[idx]}
    if map_key:
        out[map_key] = clips.map[idx].astype(np.float32)
    return out


def endless_batches(clips: ClipArrays, indices: np.ndarray, batch_size: int,
                    map_key: str | None, rng: np.random.Generator) -> Iterator[dict]:
    """Shuffled passes over ``indices``; a pass drops its incomplete last batch. A set smaller
    than ``batch_size`` gives batches of the whole set (no clip twice in a contrastive batch)."""
    if not len(indices):
        raise ValueError("no clips to draw batches from")
    size = min(batch_size, len(indices))
    while True:
        order = rng.permutation(indices)
        for start in range(0, len(order) - size + 1, size):
            yield batch_of(clips, order[start:start + size], map_key)


class JointBatches:
    """Labeled and unlabeled batches for index sets that overlap (EZ-VSL reads every pool clip
    on both streams): each step's two batches are cut from one shuffled pass, so no clip is
    twice in a step's contrastive batch (a duplicate is a false negative). ``labeled()`` and
    ``unlabeled()`` are the two streams ``run_epoch`` draws from, one batch each per step."""

    def __init__(self, clips: ClipArrays, indices: np.ndarray, n_lab: int, n_unl: int,
                 lab_key: str | None, unl_key: str | None, rng: np.random.Generator):
        if n_lab + n_unl > len(indices):
            raise ValueError(f"{len(indices)} clips cannot fill a step of {n_lab} + {n_unl} "
                             f"distinct clips")
        self.clips, self.indices, self.rng = clips, indices, rng
        self.n_lab, self.n_unl, self.keys = n_lab, n_unl, (lab_key, unl_key)
        self._order, self._pos, self._pending = np.empty(0, int), 0, None

    def _draw(self) -> tuple[dict, dict]:
        step = self.n_lab + self.n_unl
        if self._pos + step > len(self._order):  # a new pass (the incomplete tail dropped)
            self._order, self._pos = self.rng.permutation(self.indices), 0
        chunk = self._order[self._pos:self._pos + step]
        self._pos += step
        return (batch_of(self.clips, chunk[:self.n_lab], self.keys[0]),
                batch_of(self.clips, chunk[self.n_lab:], self.keys[1]))

    def labeled(self) -> Iterator[dict]:
        while True:
            lab, self._pending = self._draw()
            yield lab

    def unlabeled(self) -> Iterator[dict]:
        while True:
            if self._pending is None:
                _, self._pending = self._draw()
            out, self._pending = self._pending, None
            yield out


def ordered_batches(clips: ClipArrays, indices: np.ndarray, batch_size: int,
                    map_key: str = "gt") -> Iterator[dict]:
    """One pass in order (evaluation), the last batch possibly smaller."""
    for start in range(0, len(indices), batch_size):
        yield batch_of(clips, indices[start:start + batch_size], map_key)
