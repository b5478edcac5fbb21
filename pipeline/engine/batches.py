"""Shard rows -> model batches, the same conversion for every consumer (Ray Data map tasks, the
offline reader, the benchmark's in-memory clips, ``dmt localize``).

Truth discipline: labeled rows become ``gt`` (used by the supervised loss); unlabeled rows that
happen to carry boxes (the synthetic benchmark knows every box) become ``true_map``, which the
DMT step uses for monitoring only; test and validation rows become ``gt`` for evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from pipeline.data.codecs import decode_jpeg, decode_pcm16
from pipeline.metrics import gt_map

# the batch key each split's box map goes to ("val" is carved from the labeled rows)
MAP_KEY = {"labeled": "gt", "unlabeled": "true_map", "test": "gt", "val": "gt"}


def resize_square(frame: np.ndarray, side: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (side, side, 3): the field squashes frames to a square (EZ-VSL resizes
    to 224x224), which keeps normalised boxes valid."""
    if frame.shape[0] == side and frame.shape[1] == side:
        return frame
    return np.asarray(Image.fromarray(frame).resize((side, side), Image.Resampling.BILINEAR))


def row_map(boxes: Any, boxes_256: Any, fmt: str) -> np.ndarray:
    """The (224, 224) ground-truth map of a row's boxes (Flickr's consensus map when it has
    its 256-grid boxes)."""
    if fmt == "flickr" and boxes_256 is not None and len(boxes_256):
        return gt_map([list(b) for b in boxes_256], "flickr")
    return gt_map([list(b) for b in (boxes if boxes is not None else [])], "vggss")


def _frame(jpeg: bytes, clip_id: str) -> np.ndarray:
    """A shard row's frame; a damaged one is an error naming the clip (PIL names a BytesIO)."""
    try:
        return decode_jpeg(jpeg)
    except Exception as exc:  # noqa: BLE001 - PIL raises several types for bad bytes
        raise ValueError(f"clip {clip_id!r}: its frame_jpeg in the shards is not a readable "
                         f"JPEG ({type(exc).__name__}); rebuild the shards with `dmt "
                         f"preprocess`") from exc


class ToTrainingBatch:
    """Shard rows (numpy column batch) -> ``frame`` (B, 3, S, S) uint8, ``audio`` (B, T) float32,
    ``<map_key>`` (B, 224, 224) float32, ``has_boxes`` (B,) bool, ``id`` (B,) str. A plain
    callable: Ray Data runs it in map tasks, everything else calls it directly."""

    def __init__(self, image_size: int, map_key: str | None):
        self.image_size, self.map_key = image_size, map_key

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        frames = [resize_square(_frame(b, i), self.image_size)
                  for b, i in zip(batch["frame_jpeg"], batch["id"], strict=True)]
        out = {
            "id": np.asarray(batch["id"]).astype(str),
            "frame": np.stack(frames).transpose(0, 3, 1, 2).copy(),
            "audio": np.stack([decode_pcm16(a) for a in batch["audio"]]),
            "has_boxes": np.asarray(batch["has_boxes"], dtype=bool),
        }
        if self.map_key:
            out[self.map_key] = np.stack([
                row_map(b, b256, fmt).astype(np.float32) for b, b256, fmt in
                zip(batch["boxes"], batch["boxes_256"], batch["box_format"], strict=True)])
        return out


def rows_to_batch(rows: list[dict[str, Any]], image_size: int, map_key: str | None = "gt"
                  ) -> dict[str, np.ndarray]:
    """A few row dicts (``reader.read_clips``) -> one batch of :class:`ToTrainingBatch`."""
    columns = {}
    for key in rows[0]:
        arr = np.empty(len(rows), dtype=object)
        arr[:] = [r[key] for r in rows]
        columns[key] = arr
    return ToTrainingBatch(image_size, map_key)(columns)


def _writable(value: Any) -> np.ndarray:
    """A read-only view of Ray's object store is copied: torch would share it and warn that
    writing to it is undefined; a copy of one batch costs far less than a step."""
    arr = np.asarray(value)
    return arr if arr.flags.writeable else arr.copy()


def to_torch(batch: dict[str, Any], device) -> dict[str, Any]:
    """uint8 frames -> float [0, 1]; everything else as tensors on ``device``. On a GPU the host
    tensors are pinned and copied without blocking, so the copy overlaps the previous step's
    kernels; frames cross as uint8 (a quarter of the bytes) and become float on the device."""
    import torch  # heavy: the Ray Data tasks that run ToTrainingBatch never load torch

    device = torch.device(device)
    pin = device.type == "cuda"
    out = {}
    for key, value in batch.items():
        if key in ("id", "split"):
            out[key] = list(value)
            continue
        t = value if torch.is_tensor(value) else torch.from_numpy(_writable(value))
        out[key] = (t.pin_memory() if pin else t).to(device, non_blocking=True)
    out["frame"] = out["frame"].float().div_(255.0)
    return out
