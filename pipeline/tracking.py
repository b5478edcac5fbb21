"""MLflow, and nothing else: the only module of the package that imports mlflow.

The driver creates the run (params, tags, config artifact) and ends it; Train's rank-0 worker logs
metrics and artifacts into that run by id through :class:`RunLogger`. Because Ray Train workers
change directory, the tracking URI is resolved to an absolute one on the driver before any worker
starts, and experiments on a local SQLite store get an absolute artifact folder beside the
database (MLflow's own default, ``./mlruns``, would be relative to each worker's directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM_LEN = 6000  # MLflow's limit for a param value
PACKAGES = ("torch", "torchaudio", "torchvision", "ray", "mlflow", "decord2", "av", "pyarrow",
            "numpy", "dmt-avsl")


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


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The checked-out commit (with ``-dirty`` when tracked files changed), or ``unknown``."""
    cwd = repo or Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("DMT_GIT_COMMIT", "unknown")


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def reproducibility_tags(extra: dict[str, Any] | None = None) -> dict[str, str]:
    tags = {"git_commit": git_commit()}
    tags.update({f"version.{k}": v for k, v in package_versions().items()})
    for key, value in (extra or {}).items():
        tags[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return tags


def start_run(uri: str, experiment: str, run_name: str, params: dict[str, Any],
              tags: dict[str, str] | None = None, parent_run_id: str | None = None) -> str:
    """Create a run with its params and tags; return its id. Nothing is left 'active' globally."""
    client = MlflowClient(uri)
    exp_id = get_or_create_experiment(client, experiment, uri)
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    run = client.create_run(exp_id, run_name=run_name, tags=all_tags)
    run_id = run.info.run_id
    plist = [Param(k, str(v)[:MAX_PARAM_LEN]) for k, v in params.items()]
    for i in range(0, len(plist), 100):  # MLflow caps a batch at 100 params
        client.log_batch(run_id, params=plist[i:i + 100])
    return run_id


class RunLogger:
    """Logs into an existing run by id; safe to build in a Ray worker (pickles as uri + id)."""

    def __init__(self, uri: str, run_id: str):
        self.uri, self.run_id = uri, run_id
        self._client: MlflowClient | None = None

    def __getstate__(self) -> dict:
        return {"uri": self.uri, "run_id": self.run_id, "_client": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.uri)
        return self._client

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v == v]  # no NaN
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_params(self, params: dict[str, Any]) -> None:
        plist = [Param(k, str(v)[:MAX_PARAM_LEN]) for k, v in params.items()]
        for i in range(0, len(plist), 100):
            self.client.log_batch(self.run_id, params=plist[i:i + 100])

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        self.client.log_dict(self.run_id, data, artifact_file)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_png(self, png_bytes: bytes, artifact_file: str) -> None:
        """Log already-encoded PNG bytes under ``artifact_file`` (e.g. heatmaps/epoch_003.png)."""
        folder, name = os.path.split(artifact_file)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(png_bytes)
            self.client.log_artifact(self.run_id, str(path), folder or None)

    def end(self, status: str = "FINISHED") -> None:
        """status: FINISHED, FAILED or KILLED."""
        self.client.set_terminated(self.run_id, status)


def get_run(uri: str, run_id: str):
    return MlflowClient(uri).get_run(run_id)


def search_runs(uri: str, experiment: str, filter_string: str = "", max_results: int = 100):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=filter_string,
                              max_results=max_results)


def metric_history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key)]


def list_artifacts(uri: str, run_id: str, path: str | None = None) -> list[str]:
    return [a.path for a in MlflowClient(uri).list_artifacts(run_id, path)]


def download_artifacts(uri: str, artifact_uri: str, dst: str | os.PathLike | None = None) -> str:
    """Fetch ``runs:/<id>/<path>`` or ``models:/...`` to a local path (for --checkpoint URIs)."""
    mlflow.set_tracking_uri(uri)
    return mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri,
                                               dst_path=str(dst) if dst else None)


def run_url(uri: str, run_id: str, experiment_id: str) -> str:
    """A link into the MLflow UI (http servers) or the UI path to open after `mlflow ui`."""
    base = uri if uri.startswith("http") else "http://127.0.0.1:5000"
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"



class LocalServer:
    """``mlflow server`` on 127.0.0.1 over a local SQLite store, for runs written by several
    processes at once (Tune trials): SQLite files do not take concurrent writers well.

    Artifacts are not proxied (``--no-serve-artifacts``): clients on this machine write them
    straight to the same folder a plain ``mlflow ui`` of the SQLite file reads.
    """

    def __init__(self, sqlite_uri: str, port: int = 0):
        if not sqlite_uri.startswith("sqlite:///"):
            raise ValueError(f"LocalServer needs a sqlite:/// URI, got {sqlite_uri}")
        self.sqlite_uri, self.port, self.proc = sqlite_uri, port, None

    def __enter__(self) -> str:
        import socket
        import sys
        import time
        import urllib.request

        if not self.port:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
        MlflowClient(self.sqlite_uri).search_experiments()  # create the schema in-process first
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.sqlite_uri,
               "--default-artifact-root", local_artifact_root(self.sqlite_uri),
               "--no-serve-artifacts", "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", "1"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                tail = self.proc.stderr.read().decode()[-800:]
                raise RuntimeError(f"mlflow server exited: {tail}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return url
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"mlflow server did not answer on {url} within 90 s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


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
