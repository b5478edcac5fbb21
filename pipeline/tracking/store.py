"""Tracking stores: the URI a run uses (SQLite by default, any server), the UI command and
links, and reading runs back."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

PARENT_TAG = "mlflow.parentRunId"
SUBMISSION_TAG = "ray.submission_id"
SHARDS_DIGEST_TAG = "dmt.shards_digest"  # a preprocessing run: the summary digest it wrote


def resolve_tracking_uri(configured: str = "", cwd: str | os.PathLike | None = None) -> str:
    """The absolute tracking URI: config, then ``$MLFLOW_TRACKING_URI``, then ``./mlflow.db``.

    A relative SQLite path is made absolute against ``cwd`` (the directory the command started in).
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI", "")
    base = Path(cwd or os.getcwd())
    if not uri:
        return f"sqlite:///{(base / 'mlflow.db').resolve()}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        rel = uri[len("sqlite:///"):]
        return f"sqlite:///{(base / rel).resolve()}"
    if "://" not in uri:  # a bare path: treat as a SQLite file, never as the file store
        return f"sqlite:///{(base / uri).resolve()}"
    return uri


def local_artifact_root(uri: str) -> str | None:
    """For a local SQLite store, the absolute artifact folder beside the database."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return None


def ui_command(uri: str) -> str:
    """The exact command a user runs to browse this store (bound to loopback)."""
    if uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
    return f"open {uri} in a browser"


def get_or_create_experiment(client: MlflowClient, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = local_artifact_root(uri)
    location = f"{root}/{name}" if root else None
    return client.create_experiment(name, artifact_location=location)

def get_run(uri: str, run_id: str):
    return MlflowClient(uri).get_run(run_id)


def search_runs(uri: str, experiment: str, filter_string: str = "", max_results: int = 100):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=filter_string,
                              max_results=max_results)


def runs_of_submission(uri: str, submission_id: str) -> list:
    """The runs a Ray job logged (tag ``ray.submission_id``), top-level runs first, newest
    first within each group (a sweep's parent before its trials)."""
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    if not ids:
        return []
    runs = client.search_runs(ids, f"tags.`{SUBMISSION_TAG}` = '{submission_id}'",
                              max_results=200, order_by=["attributes.start_time DESC"])
    # the job's own runs first; a preprocessing run it logged for its shards (lineage) last
    return sorted(runs, key=lambda r: (SHARDS_DIGEST_TAG in r.data.tags,
                                       PARENT_TAG in r.data.tags))


@contextmanager
def tracking_uri(uri: str):
    """MLflow's model logging and registry read the process-wide tracking URI; it is set for the
    call and put back afterwards, with ``$MLFLOW_TRACKING_URI`` (``set_tracking_uri`` writes
    it too, and ``resolve_tracking_uri`` reads it)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        if env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env


def metric_history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key)]


def list_artifacts(uri: str, run_id: str, path: str | None = None) -> list[str]:
    return [a.path for a in MlflowClient(uri).list_artifacts(run_id, path)]


def download_artifacts(uri: str, artifact_uri: str, dst: str | os.PathLike | None = None) -> str:
    """Fetch ``runs:/<id>/<path>`` or ``models:/...`` to a local path (for --model URIs)."""
    with tracking_uri(uri):  # models:/ URIs are resolved through the process-wide URI
        return mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri,
                                                   dst_path=str(dst) if dst else None)


# MLflow 3.17's UI opens an experiment in its GenAI view (traces); this query opens the
# model-training view (runs table, metric charts, models) that these runs belong in
TRAINING_VIEW = "?workflowType=machine_learning"


def _ui_base(uri: str) -> str:
    return (uri if uri.startswith("http") else "http://127.0.0.1:5000").rstrip("/")


def run_url(uri: str, run_id: str, experiment_id: str) -> str:
    """A link into the MLflow UI (http servers) or the UI path to open after `mlflow ui`."""
    return f"{_ui_base(uri)}/#/experiments/{experiment_id}/runs/{run_id}{TRAINING_VIEW}"

def run_link(uri: str, run_id: str, cache: dict | None = None) -> str:
    """The UI link of a run (looked up in ``uri`` for its experiment), or a plain note when the
    store cannot be read from here (e.g. a SQLite file on another machine). For `dmt jobs`."""
    cache = cache if cache is not None else {}
    try:
        if run_id not in cache:
            cache[run_id] = MlflowClient(uri).get_run(run_id).info
        info = cache[run_id]
    except Exception as exc:  # noqa: BLE001 - any store error: still name the run
        return f"MLflow run {run_id} in {uri} (not readable from here: {type(exc).__name__})"
    link = run_url(uri, run_id, info.experiment_id)
    note = f" (status {info.status})" if info.status != "FINISHED" else ""
    if not uri.startswith("http"):
        return f"{link}{note}  [after: {ui_command(uri)}]"
    return link + note
