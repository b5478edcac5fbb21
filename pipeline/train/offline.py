"""Ray-free access to shards and checkpoints: `dmt evaluate`, `dmt localize`, plain-loop benchmarks.

Reads Parquet with pyarrow one record batch at a time (memory bounded by the batch), and runs the
same ``ToTrainingBatch`` conversion as the Ray Data path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import torch

from pipeline import config as config_mod
from pipeline.dmt.state import make_state
from pipeline.train import checkpoint as ckpt_io
from pipeline.train import data as train_data
from pipeline.train import evaluation

COLUMNS = ["id", "frame_jpeg", "audio", "boxes", "boxes_256", "box_format", "has_boxes"]


def iter_split_batches(shards: str | os.PathLike, split: str, image_size: int,
                       batch_size: int = 32) -> Iterator[dict[str, Any]]:
    """Numpy training batches of one split, in file order, without Ray: every batch has
    ``batch_size`` rows except perhaps the last (the scanner's own batches vary in size)."""
    scanner = train_data.shard_dataset(shards).scanner(
        columns=COLUMNS, filter=pads.field("split") == split, batch_size=batch_size)
    convert = train_data.ToTrainingBatch(image_size, train_data.MAP_KEY[split])
    pending: list[pa.RecordBatch] = []
    rows = 0
    for record_batch in scanner.to_batches():
        pending.append(record_batch)
        rows += record_batch.num_rows
        while rows >= batch_size:
            table = pa.Table.from_batches(pending)
            yield _convert(convert, table.slice(0, batch_size))
            rest = table.slice(batch_size)
            pending, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield _convert(convert, pa.Table.from_batches(pending))


def _convert(convert, table: pa.Table) -> dict[str, Any]:
    return convert({c: table.column(c).to_numpy(zero_copy_only=False) for c in COLUMNS})


def load_state(checkpoint: str | os.PathLike, device: str = "cpu"):
    """(state, config, checkpoint dict) from a checkpoint file or folder."""
    data = ckpt_io.load(checkpoint, map_location=device)
    cfg = config_mod.from_dict(data["config"])
    state = make_state(cfg.model, cfg.dmt, cfg.optim, device, seed=cfg.train.seed,
                       sample_rate=cfg.data.sample_rate)
    state.load_state_dict(data["state"])
    return state, cfg, data


def evaluate_checkpoint(checkpoint: str | os.PathLike, shards: str | os.PathLike,
                        split: str = "test", batch_size: int = 32,
                        device: str = "cpu") -> dict[str, Any]:
    """The metrics table of a checkpoint on one split, with the trivial predictors beside it."""
    state, cfg, data = load_state(checkpoint, device)
    if not Path(shards).is_dir():
        raise FileNotFoundError(f"--data: {shards} is not a shards folder")
    batches = iter_split_batches(shards, split, cfg.model.image_size, batch_size)
    with torch.no_grad():
        scores = evaluation.score_batches(
            state, batches, lambda b: train_data.to_torch(b, state.device))
    if not scores["whole_image"]["ciou"]:
        raise ValueError(f"{shards}: no rows in split {split!r}")
    headline = evaluation.reported_role(state.method, cfg.dmt.eval_model)
    return {"checkpoint": str(ckpt_io.find(checkpoint)), "split": split, "method": state.method,
            "reported": headline, "epoch": data["epoch"] + 1, "step": state.step,
            "metrics": evaluation.summarize_scores(scores, split, headline)}
