"""Preprocessing as an MLflow run, and the link from a training run back to it: a registered
model version -> its training run -> the shards it read (dataset inputs) -> the preprocessing
run that wrote them -> the raw inputs (its params and its ``raw`` dataset input).

The link is the shards' content: the preprocessing run carries the digest of the
``summary.json`` it wrote (the same digest as the training run's dataset inputs), and a
training run looks it up by that digest in its own store. Shards preprocessed without a run
(``--no-log``, another store) get one made from their ``summary.json`` when a run first trains
on them (tag ``dmt.preprocess_logged_by``), so every model leads back to its raw inputs.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric

from pipeline.tracking.datasets import CONTEXT_TAG, summary_digest
from pipeline.tracking.runs import reproducibility_tags, start_run
from pipeline.tracking.store import SHARDS_DIGEST_TAG, search_runs

PREPROCESS_EXPERIMENT = "preprocess"
PREPROCESS_RUN_TAG = "dmt.preprocess_run_id"  # on a training run: the run that wrote its shards
LOGGED_BY_TAG = "dmt.preprocess_logged_by"  # "dmt preprocess", or "train" (from summary.json)


def _params(summary: dict[str, Any], shards: str) -> dict[str, Any]:
    """Decode options and input sources as params (``decode.*``, ``input.*``)."""
    annotations, lists = summary.get("annotations") or {}, summary.get("lists") or {}
    params = {**{f"decode.{k}": v for k, v in (summary.get("decode_options") or {}).items()},
              "input.source": summary.get("inputs_source"), "input.format":
              annotations.get("format"), "input.annotations": annotations.get("source"),
              "input.lists": lists.get("source"), "output.shards": shards,
              "engine": summary.get("engine"), "schema_version": summary.get("schema_version")}
    return {k: v for k, v in params.items() if v is not None}


def _metrics(summary: dict[str, Any]) -> dict[str, float]:
    """Counts and speed: rows, quarantined (and per reason), missing, clips/s, seconds."""
    out = {k: float(summary[k]) for k in ("inputs", "rows", "quarantined", "missing_count",
                                         "bytes_per_row", "clips_per_s")
           if isinstance(summary.get(k), (int, float))}
    out["seconds"] = float((summary.get("timings") or {}).get("total_s") or 0.0)
    for split, counts in (summary.get("splits") or {}).items():
        out[f"rows/{split}"] = float(counts.get("rows") or 0)
    for reason, count in (summary.get("quarantine_reasons") or {}).items():
        out[f"quarantine/{reason}"] = float(count)
    return out


def _raw_input(summary: dict[str, Any]) -> DatasetInput:
    """The raw clips as the run's input: their folder or manifest, with the annotation file
    and the id lists, digested together."""
    source = {"uri": summary.get("inputs_source"),
              "annotations": (summary.get("annotations") or {}).get("source"),
              "lists": (summary.get("lists") or {}).get("source")}
    text = json.dumps(source, sort_keys=True)
    name = str(source["uri"] or "raw").rstrip("/").rsplit("/", 1)[-1]
    dataset = Dataset(name=f"raw/{name}", digest=hashlib.sha256(text.encode()).hexdigest()[:16],
                      source_type="local", source=text,
                      profile=json.dumps({"inputs": summary.get("inputs")}))
    return DatasetInput(dataset, tags=[InputTag(CONTEXT_TAG, "raw")])


def preprocess_run_of(uri: str, summary: dict[str, Any]) -> str | None:
    """The newest preprocessing run in this store that wrote shards with this summary."""
    runs = search_runs(uri, PREPROCESS_EXPERIMENT,
                       f"tags.`{SHARDS_DIGEST_TAG}` = '{summary_digest(summary)}'")
    return runs[0].info.run_id if runs else None


def log_preprocess(uri: str, shards: str, summary: dict[str, Any],
                   quarantine: list[dict[str, Any]], logged_by: str = "dmt preprocess") -> str:
    """One finished run in the ``preprocess`` experiment for shards just written (or, from
    ``train``, read): params, metrics, the raw inputs, ``summary.json`` and
    ``quarantine.jsonl`` as artifacts. Returns its id."""
    folder = "/".join(shards.rstrip("/").rsplit("/", 2)[-2:])
    run_id = start_run(uri, PREPROCESS_EXPERIMENT, f"preprocess {folder}",
                       _params(summary, shards),
                       reproducibility_tags({SHARDS_DIGEST_TAG: summary_digest(summary),
                                             LOGGED_BY_TAG: logged_by}))
    client = MlflowClient(uri)
    client.log_inputs(run_id, datasets=[_raw_input(summary)])
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0)
                                      for k, v in _metrics(summary).items()])
    with tempfile.TemporaryDirectory(prefix="dmt-preprocess-") as tmp:
        (Path(tmp) / "summary.json").write_text(json.dumps(summary, indent=1))
        (Path(tmp) / "quarantine.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in quarantine))
        client.log_artifacts(run_id, tmp, "preprocess")
    client.set_terminated(run_id, "FINISHED")
    return run_id


def link_preprocess_run(uri: str, run_id: str, shards: str, summary: dict[str, Any],
                        quarantine: list[dict[str, Any]]) -> str:
    """Tag the training run ``run_id`` with the preprocessing run of its shards (made from
    their summary when this store has none); returns that run's id."""
    prep = preprocess_run_of(uri, summary) or log_preprocess(uri, shards, summary, quarantine,
                                                             logged_by="train")
    MlflowClient(uri).set_tag(run_id, PREPROCESS_RUN_TAG, prep)
    return prep
