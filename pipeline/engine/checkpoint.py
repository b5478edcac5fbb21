"""Checkpoint files: everything to resume (networks, optimiser, RNG, step, stage, epoch, config).

One file, ``state.pt``, written with ``torch.save`` and read with ``torch.load(weights_only=True)``
(only tensors, numbers, strings, lists and dicts inside), so loading a checkpoint never runs code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from pipeline import locations

FILENAME = "state.pt"
FORMAT = 1


def save(folder: str | os.PathLike, state_dict: dict[str, Any], *, epoch: int,
         config: dict[str, Any], metrics: dict[str, float] | None = None,
         streams: dict[str, int] | None = None) -> Path:
    """Write ``folder/state.pt`` (atomically) and return its path. ``streams``: batches drawn
    so far from each training stream (a resumed run skips as many)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILENAME
    tmp = path.with_suffix(".tmp")
    torch.save({"format": FORMAT, "state": state_dict, "epoch": int(epoch), "config": config,
                "metrics": dict(metrics or {}), "streams": dict(streams or {})}, tmp)
    os.replace(tmp, path)
    return path


def find(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a folder holding one (a Ray checkpoint folder, an MLflow artifact);
    ``path`` may be a ``pipeline.locations.ObjectPath`` (object storage): one is returned."""
    p = path if locations.is_remote(path) else Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        hits = sorted(p.rglob(FILENAME))
        if hits:
            return hits[-1]
        raise FileNotFoundError(f"no {FILENAME} under {p}")
    raise FileNotFoundError(f"checkpoint not found: {p}")


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save`, safely (``weights_only=True``)."""
    file = find(path)
    try:
        data = torch.load(file, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        # a JSON file, a truncated save or a pickle of objects: torch's message ("Unsupported
        # operand 123", "PytorchStreamReader failed ...") names neither the file nor the cause
        first_line = (str(err).splitlines() or ["empty or truncated file"])[0][:200]
        raise ValueError(f"{file}: not a dmt-avsl checkpoint, or a damaged one "
                         f"({type(err).__name__}: {first_line})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{file}: not a dmt-avsl checkpoint (format {FORMAT})")
    return data
