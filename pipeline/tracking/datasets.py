"""The shards a run read, as MLflow dataset inputs: the run page's Datasets list shows which
data made which run.

One dataset per split a run reads (``labeled`` and ``unlabeled`` for training, the evaluation
split), each named ``<data folder>/<shards folder>/<split>``, with the shards folder as its
source, a digest of the folder's ``summary.json`` and the split, the split's row count and the
schema version in its profile, and the shard schema as an MLflow schema. The digest changes
whenever the shards are rebuilt (the summary holds the preprocessing fingerprint and every
count).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.types.schema import Array, ColSpec, DataType, Schema

from pipeline.data import schema

CONTEXT_TAG = "mlflow.data.context"  # MLflow's own tag: the UI shows it beside the dataset
CONTEXTS = {"labeled": "training", "unlabeled": "training", "test": "evaluation",
            "val": "validation"}


def summary_digest(summary: dict[str, Any]) -> str:
    """A digest of ``summary.json`` as read (key order does not matter): 16 hex digits."""
    text = json.dumps(summary, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _mlflow_schema(arrow_schema) -> str:
    """The shard columns as MLflow's column spec (lists of boxes as arrays of doubles/ints)."""
    def to_type(t):
        if pa.types.is_list(t):
            return Array(to_type(t.value_type))
        for check, dtype in ((pa.types.is_string, DataType.string),
                             (pa.types.is_binary, DataType.binary),
                             (pa.types.is_boolean, DataType.boolean),
                             (pa.types.is_int32, DataType.integer),
                             (pa.types.is_integer, DataType.long),
                             (pa.types.is_float32, DataType.float),
                             (pa.types.is_floating, DataType.double)):
            if check(t):
                return dtype
        return DataType.string

    cols = [ColSpec(to_type(f.type), f.name, required=not f.nullable) for f in arrow_schema]
    return json.dumps({"mlflow_colspec": Schema(cols).to_dict()})


def shard_inputs(shards: str, summary: dict[str, Any], splits: list[str],
                 rows: dict[str, int] | None = None) -> list[DatasetInput]:
    """Dataset inputs for ``splits`` of the shards folder ``shards`` (path or URI); ``rows``
    gives the count of a split the summary does not hold (``val``, carved from labeled)."""
    digest = summary_digest(summary)
    source_type = shards.split("://", 1)[0] if "://" in shards else "local"
    folder = "/".join(shards.rstrip("/").rsplit("/", 2)[-2:])  # e.g. demo/shards
    spec = _mlflow_schema(schema.SCHEMA)
    out = []
    for split in splits:
        counts = (summary.get("splits") or {}).get(split, {})
        profile = {"rows": (rows or {}).get(split, counts.get("rows")),
                   "quarantined": counts.get("quarantined"),
                   "split": split, "schema_version": summary.get("schema_version"),
                   "summary_digest": digest, "shards_rows": summary.get("rows")}
        dataset = Dataset(name=f"{folder}/{split}",
                          digest=hashlib.sha256(f"{digest}/{split}".encode()).hexdigest()[:16],
                          source_type=source_type, source=json.dumps({"uri": shards}),
                          schema=spec, profile=json.dumps(profile))
        out.append(DatasetInput(dataset, tags=[InputTag(CONTEXT_TAG,
                                                        CONTEXTS.get(split, split))]))
    return out
