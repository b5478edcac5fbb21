"""Runs: creating one with its params and reproducibility tags, and logging into it by id
(:class:`RunLogger`, safe to pickle into a Ray worker)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipeline.errors import TrackingUnavailableError
from pipeline.tracking.datasets import shard_inputs
from pipeline.tracking.store import PARENT_TAG, SUBMISSION_TAG, get_or_create_experiment
from pipeline.tracking.system import system_metrics

MAX_PARAM_LEN = 6000  # MLflow's limit for a param value
NOTE_TAG = "mlflow.note.content"  # the run page's description (MLflow's own tag)
DEFAULT_RETRY_S = 300.0  # tracking.retry_s: how long a run waits for a tracking server
# MLflow's own retry of one request (7 tries, backoff factor 2: about 4 minutes) would hide the
# bound; a short one here, and ``retrying`` keeps calling until tracking.retry_s is spent.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def _transient(exc: Exception) -> bool:
    """A request that did not reach a working server (refused, reset, timed out, 502-504), as
    opposed to one the server answered with an error (a bad value, a missing run)."""
    if not isinstance(exc, MlflowException):
        return isinstance(exc, (ConnectionError, TimeoutError))
    text = str(exc)
    return (text.startswith("API request to") and ("failed with exception" in text
                                                  or "timed out" in text)) \
        or exc.error_code == "TEMPORARILY_UNAVAILABLE" or any(
            f"status code {code}" in text for code in (502, 503, 504))


def retrying(call, uri: str, what: str, retry_s: float = DEFAULT_RETRY_S):
    """``call()``, called again while the tracking server is unreachable, for up to
    ``retry_s`` seconds; then :class:`TrackingUnavailableError` naming the server."""
    deadline = time.monotonic() + retry_s
    wait = 1.0
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - only transient ones are retried
            if not _transient(exc):
                raise
            if time.monotonic() + wait > deadline:
                raise TrackingUnavailableError(
                    f"MLflow tracking server {uri} unreachable for {retry_s:g} s "
                    f"(tracking.retry_s) while trying to {what}: "
                    f"{str(exc).splitlines()[0][:200]}") from None
            time.sleep(wait)
            wait = min(wait * 2, 15.0)
PACKAGES = ("torch", "torchaudio", "torchvision", "ray", "mlflow", "av", "pyarrow",
            "numpy", "dmt-avsl")


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The checked-out commit (with ``-dirty`` when tracked files changed), or ``unknown``."""
    cwd = repo or Path(__file__).resolve().parents[2]
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




def job_submission_id() -> str:
    """The Ray Jobs submission id of the job this process belongs to ('' outside a job):
    ``DMT_SUBMISSION_ID`` (set by ``dmt submit``), else the id Ray hands a job's driver in
    ``RAY_JOB_CONFIG_JSON_ENV_VAR`` (no public API exposes it; plain ``ray job submit``)."""
    if os.environ.get("DMT_SUBMISSION_ID"):
        return os.environ["DMT_SUBMISSION_ID"]
    try:
        meta = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")).get("metadata")
        return str((meta or {}).get("job_submission_id") or "")
    except (ValueError, AttributeError):
        return ""


def command_line() -> str:
    """The command this process runs, as the user typed it (``dmt train --config ...``)."""
    argv = list(sys.argv)
    if not argv:
        return "python"
    argv[0] = Path(argv[0]).name  # the console script's name, not where it is installed
    if argv[0] in ("cli.py", "__main__.py"):  # `python -m pipeline.cli ...`
        scripts = [e.name for e in metadata.entry_points(group="console_scripts")
                   if e.value == "pipeline.cli:main"]
        argv[0] = scripts[0] if scripts else "python -m pipeline.cli"
    return f"{argv[0]} {shlex.join(argv[1:])}".rstrip()


def source_name(command: str) -> str:
    """``command`` with every path cut to its file name, for ``mlflow.source.name``: MLflow's
    run page shows the source as a file path, i.e. only what follows its last ``/`` (a whole
    command line came out as ``mlflow.db --register dmt``). The full command is in the run's
    description."""
    def short(arg: str) -> str:
        key, eq, value = arg.partition("=") if "=" in arg and not arg.startswith("-") else (
            "", "", arg)
        return f"{key}{eq}{Path(value).name}" if "/" in value else arg

    return " ".join(short(a) for a in shlex.split(command))


def run_description(config_name: str) -> str:
    """The run page's description: the config and the command that started the run."""
    return f"config `{config_name}`, started with `{command_line()}`"


def reproducibility_tags(extra: dict[str, Any] | None = None) -> dict[str, str]:
    """Commit, versions and the run's source (the UI's Source column: the command line, a Ray
    job or a local process, and the git commit)."""
    commit = git_commit()
    tags = {"git_commit": commit, "mlflow.source.name": source_name(command_line())[:500],
            "mlflow.source.type": "JOB" if job_submission_id() else "LOCAL"}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    if job_submission_id():
        tags[SUBMISSION_TAG] = job_submission_id()
    tags.update({f"version.{k}": v for k, v in package_versions().items()})
    for key, value in (extra or {}).items():
        tags[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return tags


def start_run(uri: str, experiment: str, run_name: str, params: dict[str, Any],
              tags: dict[str, str] | None = None, parent_run_id: str | None = None,
              retry_s: float = DEFAULT_RETRY_S) -> str:
    """Create a run with its params and tags; return its id. Nothing is left 'active' globally."""
    client = MlflowClient(uri)
    exp_id = retrying(lambda: get_or_create_experiment(client, experiment, uri), uri,
                      f"open experiment {experiment!r}", retry_s)
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    run = retrying(lambda: client.create_run(exp_id, run_name=run_name, tags=all_tags), uri,
                   f"create run {run_name!r}", retry_s)
    logger = RunLogger(uri, run.info.run_id, retry_s)
    logger.log_params(params)
    return run.info.run_id


class RunLogger:
    """Logs into an existing run by id; safe to build in a Ray worker (pickles as uri + id).
    Every call waits up to ``retry_s`` seconds for an unreachable server (a restart), then
    raises :class:`TrackingUnavailableError`."""

    def __init__(self, uri: str, run_id: str, retry_s: float = DEFAULT_RETRY_S):
        self.uri, self.run_id, self.retry_s = uri, run_id, retry_s
        self._client: MlflowClient | None = None

    def __getstate__(self) -> dict:
        return {"uri": self.uri, "run_id": self.run_id, "retry_s": self.retry_s,
                "_client": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.uri)
        return self._client

    def _call(self, what: str, fn, *args, **kwargs):
        return retrying(lambda: fn(*args, **kwargs), self.uri, what, self.retry_s)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v == v]  # no NaN
        for i in range(0, len(items), 1000):
            self._call(f"log the metrics of step {step}", self.client.log_batch, self.run_id,
                       metrics=items[i:i + 1000])

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._call("set tags", self.client.log_batch, self.run_id,
                   tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_params(self, params: dict[str, Any]) -> None:
        plist = [Param(k, str(v)[:MAX_PARAM_LEN]) for k, v in params.items()]
        for i in range(0, len(plist), 100):  # MLflow caps a batch at 100 params
            self._call("log params", self.client.log_batch, self.run_id,
                       params=plist[i:i + 100])

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call(f"log {artifact_file}", self.client.log_text, self.run_id, text,
                   artifact_file)

    def log_dict(self, data: dict, artifact_file: str) -> None:
        self._call(f"log {artifact_file}", self.client.log_dict, self.run_id, data,
                   artifact_file)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self._call(f"log {Path(path).name}", self.client.log_artifact, self.run_id, str(path),
                   artifact_path)

    def log_png(self, png_bytes: bytes, artifact_file: str) -> None:
        """Log already-encoded PNG bytes under ``artifact_file`` (e.g. heatmaps/epoch_003.png)."""
        folder, name = os.path.split(artifact_file)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(png_bytes)
            self._call(f"log {artifact_file}", self.client.log_artifact, self.run_id,
                       str(path), folder or None)

    def log_image(self, image, key: str, step: int) -> None:
        """An image by step (``image``: (H, W, 3) uint8 array or PIL image): the run page's
        images with MLflow's step slider."""
        self._call(f"log image {key} of step {step}", self.client.log_image, self.run_id,
                   image, key=key, step=step)

    def log_shard_inputs(self, shards: str, summary: dict, splits: list[str],
                         rows: dict[str, int] | None = None) -> None:
        """The shards the run reads, one MLflow dataset input per split (``datasets.py``)."""
        self._call("log dataset inputs", self.client.log_inputs, self.run_id,
                   datasets=shard_inputs(shards, summary, splits, rows))

    def system_metrics(self, interval_s: float, *, node_rank: int = 0, resumed: bool = False):
        """Context manager: MLflow's system metrics into this run while it is open."""
        return system_metrics(self.uri, self.run_id, interval_s, node_rank=node_rank,
                              resumed=resumed)

    def end(self, status: str = "FINISHED") -> None:
        """status: FINISHED, FAILED or KILLED."""
        self._call(f"mark the run {status}", self.client.set_terminated, self.run_id, status)
