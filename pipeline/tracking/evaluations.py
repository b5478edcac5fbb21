"""An evaluation (`dmt evaluate`) as an MLflow run whose metrics are linked to the model it
scored and the dataset it scored it on (MLflow 3's model metrics), so a logged or registered
model's page lists its scores per dataset."""

from __future__ import annotations

import re
import time
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import LoggedModelInput, Metric

from pipeline.tracking.datasets import shard_inputs
from pipeline.tracking.model import run_model_id
from pipeline.tracking.runs import reproducibility_tags, start_run

_RUN_MODEL = re.compile(r"^runs:/([^/]+)/model/?$")
_ALIAS = re.compile(r"^models:/([^/@]+)@([^/]+)/?$")
_VERSION = re.compile(r"^models:/([^/@]+)/(\d+)/?$")
_MODEL_ID = re.compile(r"^models:/(m-[0-9a-f]+)/?$")
EVALUATION_EXPERIMENT = "evaluations"  # where a checkpoint file's evaluations go


def model_id_of(uri: str, spec: str) -> str | None:
    """The logged model behind an MLflow model URI (``runs:/<id>/model``, ``models:/<name>@
    <alias>``, ``models:/<name>/<version>``, ``models:/<model id>``); None for anything else
    (a checkpoint file: there is no model to link the scores to)."""
    client = MlflowClient(uri)
    if m := _RUN_MODEL.match(spec):
        return run_model_id(uri, m.group(1))
    if m := _ALIAS.match(spec):
        return _version_model_id(client.get_model_version_by_alias(m.group(1), m.group(2)))
    if m := _VERSION.match(spec):
        return _version_model_id(client.get_model_version(m.group(1), m.group(2)))
    if m := _MODEL_ID.match(spec):
        return m.group(1)
    return None


def _version_model_id(version) -> str | None:
    """A registered version's logged model: its ``model_id`` where the store fills it, else
    its source (``models:/<model id>``, as ``register_model`` registers them; the SQLite
    store of MLflow 3.17 leaves ``model_id`` empty)."""
    if version.model_id:
        return version.model_id
    m = _MODEL_ID.match(version.source or "")
    return m.group(1) if m else None


def log_evaluation(uri: str, spec: str, shards: str, summary: dict[str, Any], split: str,
                   metrics: dict[str, float], params: dict[str, Any]) -> tuple[str, str | None]:
    """One run "evaluate <split>" in the model's experiment (else ``evaluations``): the shards
    split as its dataset input, the model as its model input, and ``metrics`` linked to both.
    Returns (run id, model id or None)."""
    client = MlflowClient(uri)
    model_id = model_id_of(uri, spec)
    experiment = EVALUATION_EXPERIMENT
    if model_id:
        experiment_id = client.get_logged_model(model_id).experiment_id
        experiment = client.get_experiment(experiment_id).name
    run_id = start_run(uri, experiment, f"evaluate {split}",
                       {"evaluate.model": spec, "evaluate.data": shards,
                        "evaluate.split": split, **params},
                       reproducibility_tags({"evaluate.model_id": model_id or "none"}))
    (dataset,) = shard_inputs(shards, summary, [split])
    client.log_inputs(run_id, datasets=[dataset],
                      models=[LoggedModelInput(model_id)] if model_id else None)
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[
        Metric(key, float(value), now, 0, model_id=model_id,
               dataset_name=dataset.dataset.name, dataset_digest=dataset.dataset.digest)
        for key, value in metrics.items() if isinstance(value, (int, float)) and value == value])
    client.set_terminated(run_id, "FINISHED")
    return run_id, model_id
