"""A planned clip -> a shard row: its media (:mod:`pipeline.data.decode`), annotation and split.

:func:`make_row` never raises: a failure becomes a row whose ``error`` column holds the reason.
:class:`ClipDecoder` applies it to a batch (the ``map_batches`` callable of Ray Data, and the
plain loop's).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.data import schema
from pipeline.data.decode import ClipError, DecodeOptions, decode_clip, decode_pair
from pipeline.data.media import short_error


def _annotation_columns(ann: dict[str, Any]) -> dict[str, Any]:
    boxes = [list(map(float, b)) for b in ann.get("boxes") or []]
    return {
        "category": str(ann.get("category") or ""),
        "boxes": boxes,
        "boxes_256": [list(map(int, b)) for b in ann.get("boxes_256") or []],
        "box_format": str(ann.get("box_format") or ""),
        "has_boxes": bool(boxes),
    }


def make_row(item: dict[str, Any], opts: DecodeOptions) -> dict[str, Any]:
    """A planned clip (``id``, ``path``, ``split``, ``ann`` JSON, optional ``error``) -> a row of
    :data:`schema.DECODED_SCHEMA`. Never raises: failures are rows with ``error`` set."""
    ann = item.get("ann") or {}
    if isinstance(ann, str):
        ann = json.loads(ann) if ann else {}
    row: dict[str, Any] = {name: None for name in schema.DECODED_SCHEMA.names}
    row.update(id=str(item["id"]), path=str(item["path"]),
               audio_path=str(item.get("audio_path") or ""), split=str(item.get("split") or ""))
    row.update(_annotation_columns(ann))
    reason = item.get("error") or ann.get("error") or ""
    if not reason:
        try:
            if item.get("audio_path"):
                row.update(decode_pair(item["path"], item["audio_path"], row["id"], opts,
                                       int(item.get("frame_index") or 0),
                                       int(item.get("frame_count") or 1)))
            else:
                row.update(decode_clip(item["path"], row["id"], opts))
        except ClipError as exc:
            reason = exc.reason
        except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the run
            reason = f"unexpected {type(exc).__name__}: {short_error(exc)}"
    if reason:
        for name in schema.DECODED_SCHEMA.names:
            if name not in ("id", "path", "audio_path", "split", "category", "boxes",
                            "boxes_256", "box_format", "has_boxes"):
                row[name] = None
        row["error"] = reason
    return row


class ClipDecoder:
    """``map_batches`` callable: a batch of planned clips -> a pyarrow table of rows
    (:data:`schema.DECODED_SCHEMA`; failed clips have ``error`` set). Stateless, so Ray runs it
    as tasks; also callable directly on a list of dicts or a pyarrow table."""

    def __init__(self, opts: DecodeOptions):
        self.opts = opts

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, pa.Table):
            items = batch.to_pylist()
        elif isinstance(batch, dict):  # numpy / dict-of-columns batch
            keys = list(batch)
            n = len(batch[keys[0]]) if keys else 0
            items = [{k: _py(batch[k][i]) for k in keys} for i in range(n)]
        else:
            items = list(batch)
        rows = [make_row(item, self.opts) for item in items]
        return pa.Table.from_pylist(rows, schema=schema.DECODED_SCHEMA)


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
