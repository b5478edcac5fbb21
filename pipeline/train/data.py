"""Shards -> training batches: Ray Datasets per split, decoded off the training critical path.

The decoding (JPEG -> resized uint8 frame, PCM -> float waveform, boxes -> 224x224 map) runs in
Ray Data ``map_batches`` tasks that stream ahead of the training loop; the loop itself only casts
uint8 to float. ``ToTrainingBatch`` is a plain callable, usable without Ray.

Truth discipline: labeled rows become ``gt`` (used by the supervised loss); unlabeled rows that
happen to carry boxes (the synthetic benchmark knows every box) become ``true_map``, which the
DMT step uses for monitoring only; test rows become ``gt`` for evaluation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as pads

from pipeline.data.codecs import decode_jpeg, decode_pcm16
from pipeline.data.reader import shard_files
from pipeline.metrics import gt_map

SPLITS = ("labeled", "unlabeled", "test")
# "val" is carved from the labeled rows at training time (tuning selects on it, never on test)
MAP_KEY = {"labeled": "gt", "unlabeled": "true_map", "test": "gt", "val": "gt"}


def _resize_square(frame: np.ndarray, side: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (side, side, 3): the field squashes frames to a square (EZ-VSL resizes
    to 224x224), which keeps normalised boxes valid."""
    from PIL import Image

    if frame.shape[0] == side and frame.shape[1] == side:
        return frame
    return np.asarray(Image.fromarray(frame).resize((side, side), Image.Resampling.BILINEAR))


def _row_map(boxes: Any, boxes_256: Any, fmt: str) -> np.ndarray:
    if fmt == "flickr" and boxes_256 is not None and len(boxes_256):
        return gt_map([list(b) for b in boxes_256], "flickr")
    return gt_map([list(b) for b in (boxes if boxes is not None else [])], "vggss")


class ToTrainingBatch:
    """Shard rows (numpy batch) -> ``frame`` (B, 3, S, S) uint8, ``audio`` (B, T) float32,
    ``<map_key>`` (B, 224, 224) float32, ``has_boxes`` (B,) bool, ``id`` (B,) str."""

    def __init__(self, image_size: int, map_key: str | None):
        self.image_size, self.map_key = image_size, map_key

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames = [_resize_square(decode_jpeg(b), self.image_size) for b in batch["frame_jpeg"]]
        out = {
            "id": np.asarray(batch["id"]).astype(str),
            "frame": np.stack(frames).transpose(0, 3, 1, 2).copy(),
            "audio": np.stack([decode_pcm16(a) for a in batch["audio"]]),
            "has_boxes": np.asarray(batch["has_boxes"], dtype=bool),
        }
        if self.map_key:
            out[self.map_key] = np.stack([
                _row_map(b, b256, fmt).astype(np.float32) for b, b256, fmt in
                zip(batch["boxes"], batch["boxes_256"], batch["box_format"], strict=True)])
        return out


def shard_dataset(shards: str | os.PathLike) -> pads.Dataset:
    """The Parquet files of a shards folder (not its summary or quarantine files), with their
    schema version checked."""
    files = [str(p) for p in shard_files(shards)]
    if not files:
        raise FileNotFoundError(f"{shards}: no Parquet shards (run `dmt preprocess` first)")
    return pads.dataset(files, format="parquet")


def split_counts(shards: str | os.PathLike) -> dict[str, int]:
    """Rows per split, from one small column (no frames read)."""
    table = shard_dataset(shards).to_table(columns=["split"])
    counts = dict(zip(*np.unique(table.column("split").to_numpy(zero_copy_only=False),
                                 return_counts=True), strict=True))
    return {s: int(counts.get(s, 0)) for s in SPLITS}


def labeled_ids(shards: str | os.PathLike) -> list[str]:
    table = shard_dataset(shards).to_table(columns=["id"], filter=pc.field("split") == "labeled")
    return sorted(table.column("id").to_pylist())


def carve_validation(ids: list[str], fraction: float, seed: int) -> list[str]:
    """A seeded, order-independent choice of ``fraction`` of ``ids`` (at least one when
    fraction > 0, and always leaving one for training)."""
    if fraction <= 0 or len(ids) < 2:
        return []
    n = min(len(ids) - 1, max(1, round(len(ids) * fraction)))
    order = np.random.default_rng(seed).permutation(len(ids))
    pool = sorted(ids)
    return sorted(pool[i] for i in order[:n])


def split_dataset(shards: str | os.PathLike, split: str, image_size: int,
                  data_cpus: float = 0.5, batch_size: int = 32,
                  val_ids: list[str] | None = None):
    """A lazy Ray Dataset of one split's training batches (nothing runs until iterated).

    With ``val_ids``, split "val" is those labeled rows and "labeled" is the rest.
    """
    import ray.data
    from ray.data.expressions import col

    ds = ray.data.read_parquet(
        str(shards), file_extensions=["parquet"],
        columns=["id", "split", "frame_jpeg", "audio", "boxes", "boxes_256", "box_format",
                 "has_boxes"], num_cpus=data_cpus)
    # predicate expressions: Ray pushes them down into the Parquet scan
    if split == "val":
        ds = ds.filter(expr=(col("split") == "labeled") & col("id").is_in(list(val_ids or [])))
    elif split == "labeled" and val_ids:
        ds = ds.filter(expr=(col("split") == "labeled") & col("id").not_in(list(val_ids)))
    else:
        ds = ds.filter(expr=col("split") == split)
    return ds.map_batches(ToTrainingBatch(image_size, MAP_KEY[split]), batch_size=batch_size,
                          batch_format="numpy", num_cpus=data_cpus)


def read_clips(shards: str | os.PathLike, ids: list[str]) -> list[dict[str, Any]]:
    """A few rows by id as plain dicts (heatmap clips; `dmt evaluate`), read with pyarrow."""
    if not ids:  # tracking.heatmaps=0
        return []
    table = shard_dataset(shards).to_table(filter=pc.field("id").isin(ids))
    rows = {r["id"]: r for r in table.to_pylist()}
    return [rows[i] for i in ids if i in rows]


def test_ids(shards: str | os.PathLike, n: int) -> list[str]:
    """The first ``n`` test ids in sorted order: a fixed set of clips to draw at every eval."""
    if n <= 0:
        return []
    table = shard_dataset(shards).to_table(columns=["id"], filter=pc.field("split") == "test")
    return sorted(table.column("id").to_pylist())[:n]


def to_torch(batch: dict[str, Any], device) -> dict[str, Any]:
    """uint8 frames -> float [0, 1]; everything else as tensors on ``device``."""
    import torch

    out = {}
    for key, value in batch.items():
        if key == "id":
            out[key] = list(value)
            continue
        t = value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))
        out[key] = t.to(device, non_blocking=True)
    out["frame"] = out["frame"].float().div_(255.0)
    return out


def cycle_batches(shard, batch_size: int, name: str, seed: int = 0) -> Iterator[dict]:
    """Endless batches from a Ray Train dataset shard; a new pass starts when one ends.

    Every worker consumes its shard at the same rate (one batch per step), so the passes of the
    streaming split stay in step across workers.
    """
    epoch = 0
    while True:
        got = 0
        for batch in shard.iter_batches(batch_size=batch_size, batch_format="numpy",
                                        prefetch_batches=2, local_shuffle_buffer_size=256,
                                        local_shuffle_seed=seed + epoch):
            got += 1
            yield batch
        if got == 0:
            raise RuntimeError(f"the {name!r} split gave this worker no rows; preprocess more "
                               f"clips or use fewer workers")
        epoch += 1


def shard_path_ok(shards: str | os.PathLike) -> bool:
    path = Path(shards)
    return path.is_dir() and (path / "summary.json").is_file() and any(path.glob("*.parquet"))
