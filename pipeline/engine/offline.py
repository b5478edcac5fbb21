"""Checkpoints outside Ray: load a training state, evaluate it on a split of the shards
(`dmt evaluate`, a sweep's best trial, plain-loop benchmarks)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch

from pipeline import config as config_mod
from pipeline.data import reader
from pipeline.data.verify import verify_shards
from pipeline.dmt.state import make_state
from pipeline.engine import checkpoint as ckpt_io
from pipeline.engine import evaluation
from pipeline.engine.batches import MAP_KEY, ToTrainingBatch, to_torch
from pipeline.methods import WHOLE_IMAGE


def split_batches(shards: str | os.PathLike, split: str, image_size: int,
                  batch_size: int = 32, val_ids: list[str] | None = None
                  ) -> Iterator[dict[str, Any]]:
    """Model batches of one split in file order, without Ray (``reader.iter_batches``)."""
    return reader.iter_batches(shards, ToTrainingBatch(image_size, MAP_KEY[split]), split=split,
                               batch_size=batch_size, val_ids=val_ids)


def load_state(checkpoint: str | os.PathLike, device: str = "cpu"):
    """(state, config, checkpoint dict) from a checkpoint file or folder."""
    data = ckpt_io.load(checkpoint, map_location=device)
    cfg = config_mod.from_dict(data["config"])
    state = make_state(cfg.model, cfg.dmt, cfg.optim, device, seed=cfg.train.seed,
                       sample_rate=cfg.data.sample_rate)
    state.load_state_dict(data["state"])
    return state, cfg, data


def evaluate_file(checkpoint: str | os.PathLike, shards: str | os.PathLike,
                  split: str = "test", batch_size: int = 32, device: str = "cpu",
                  name: str = "") -> dict[str, Any]:
    """The metrics table of a local checkpoint (a file or a folder holding one) on one split,
    with the trivial predictors beside it; ``name``: how the table names the checkpoint
    (default: the file). Checkpoints by URI: ``pipeline.checkpoint_uri.evaluate_checkpoint``."""
    state, cfg, data = load_state(checkpoint, device)
    return _evaluate(state, cfg, data, name or str(checkpoint), shards, split, batch_size)


def _evaluate(state, cfg, data: dict[str, Any], name: str, shards: str | os.PathLike,
              split: str, batch_size: int) -> dict[str, Any]:
    verify_shards(shards, needs=() if split == "val" else (split,))
    batches = split_batches(shards, split, cfg.model.image_size, batch_size)
    with torch.no_grad():
        scores = evaluation.score_batches(state, batches, lambda b: to_torch(b, state.device))
    if not scores[WHOLE_IMAGE]["ciou"]:
        raise ValueError(f"{shards}: no rows in split {split!r}")
    headline = evaluation.reported_role(state.method, cfg.dmt.eval_model)
    return {"checkpoint": name, "split": split, "method": state.method,
            "reported": headline, "epoch": data["epoch"] + 1, "step": state.step,
            "metrics": evaluation.summarize_scores(scores, split, headline)}
