"""Submit a pipeline job (jobs/<JOB>.py) to a Ray cluster through the Jobs API, stream its logs
and exit with its status (0 if it SUCCEEDED, 1 otherwise).

The working dir uploaded with the job is this repo (files ignored by .gitignore stay behind, and
so does .git: the commit travels as DMT_GIT_COMMIT). The job runs `python jobs/<JOB>.py ARGS` with
the `python` on the cluster nodes' PATH, which must have this project's dependencies.

Token authentication (on by default since Ray 2.59): the client sends the token when
RAY_AUTH_MODE=token, taken from RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH, else
~/.ray/auth_token. When RAY_AUTH_MODE is unset and one of these exists, token mode is turned on
for this command. cluster/local/start.sh prints the exports of its cluster.

Examples:
  dmt submit train --config jobs/configs/smoke.yaml --set data.root=/shared/smoke
  dmt submit --address http://127.0.0.1:8265 --no-wait demo --config jobs/configs/demo.yaml
  dmt jobs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

JOBS = ("preprocess", "train", "tune", "evaluate", "demo")
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
REPO = Path(__file__).resolve().parents[2]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
# config keys that name files or folders: relative values resolve inside the job's working-dir
# copy on the head node, which is neither shared nor kept
PATH_KEYS = ("data.root", "data.videos", "data.annotations", "data.lists", "data.shards",
             "data.val_list", "train.storage")


class SubmitError(Exception):
    """A submission that cannot go ahead; the message says why and what to do."""


# ------------------------------------------------------------------------------------ client

def default_address() -> str:
    """The Jobs API address, as Ray's ``ray job`` CLI finds it: ``$RAY_API_SERVER_ADDRESS``,
    else ``$RAY_ADDRESS`` when it is a dashboard URL (``http://...``; a ``host:port`` there is
    the GCS address that drivers join), else http://127.0.0.1:8265."""
    for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        env = os.environ.get(name, "")
        if env.startswith(("http://", "https://")):
            return env
    return DEFAULT_ADDRESS


def token_source() -> str | None:
    """Where the token this process would send comes from (None: no token anywhere)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return f"RAY_AUTH_TOKEN_PATH ({path})"
    default = Path.home() / ".ray" / "auth_token"
    if default.is_file():
        return str(default)
    return None


def enable_token_auth(token_file: str | None = None) -> str | None:
    """Send the cluster token with every request when one is available; return its source.

    Ray's HTTP client adds the ``Authorization: Bearer`` header only when ``RAY_AUTH_MODE`` is
    ``token`` in this process; with the mode unset a present token is used, as ``ray job`` does.
    ``RAY_AUTH_MODE=disabled`` is respected.
    """
    if token_file:
        if not Path(token_file).is_file():
            raise SubmitError(f"--token-file {token_file}: no such file")
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(Path(token_file).resolve())
        os.environ.pop("RAY_AUTH_TOKEN", None)  # the env var would win over the file
    mode = os.environ.get("RAY_AUTH_MODE", "").lower()
    source = token_source()
    if mode == "disabled" or (not mode and source is None):
        return None
    os.environ["RAY_AUTH_MODE"] = "token"
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")  # the config is read once per process: re-read RAY_AUTH_MODE
    AuthenticationTokenLoader.instance().reset_cache()
    return source


def auth_hint(address: str) -> str:
    source = token_source()
    have = f"this command sent the token from {source}" if source and \
        os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else "no token was sent"
    return (f"authentication failed at {address} ({have}). The cluster runs with token "
            f"authentication: export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the cluster's "
            f"token> (cluster/local/start.sh prints both; on KubeRay read the auth Secret), or "
            f"pass --token-file FILE")


def connect(address: str, token_file: str | None = None):
    """A ``JobSubmissionClient`` for ``address``, with the token when there is one."""
    enable_token_auth(token_file)
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(address)
        client.list_jobs()  # fail here, clearly, on a wrong token or address
    except AuthenticationError:
        raise SubmitError(auth_hint(address)) from None
    except ConnectionError as exc:
        raise SubmitError(f"cannot reach the Ray dashboard at {address} ({exc}); is the cluster "
                          f"up (cluster/local/start.sh), and is --address / $RAY_ADDRESS its "
                          f"dashboard URL?") from None
    except RuntimeError as exc:
        raise SubmitError(f"{address}: {exc}") from None
    return client


# ------------------------------------------------------------------------------ submission

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--address", default=None,
                        help=f"the cluster's dashboard URL (default: $RAY_API_SERVER_ADDRESS, "
                             f"else $RAY_ADDRESS if it is a URL, else {DEFAULT_ADDRESS})")
    parser.add_argument("--no-wait", action="store_true",
                        help="print the job id and return at once (0) instead of streaming")
    parser.add_argument("--token-file", help="file holding the cluster's auth token (default: "
                        "$RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)")
    parser.add_argument("--working-dir", default=str(REPO),
                        help="folder uploaded as the job's working dir (default: this repo)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment variable of the job; repeatable")
    parser.add_argument("--submission-id", help="the job's id (default: generated by Ray)")
    parser.add_argument("job", choices=JOBS, help="entry point jobs/<JOB>.py")
    parser.add_argument("job_args", nargs=argparse.REMAINDER,
                        help="arguments of the job (those of `dmt <JOB>`)")


def check_job_args(job: str, job_args: list[str], say=print) -> None:
    """Parse the job's arguments and load its config here, so a typo stops before anything is
    uploaded (ConfigError / argparse exit 2); warn about paths that will not survive the job."""
    import importlib

    from pipeline import config as config_mod
    from pipeline.cli import COMMANDS

    mod = importlib.import_module(f"pipeline.commands.{COMMANDS[job][0]}")
    parser = argparse.ArgumentParser(prog=f"jobs/{job}.py")
    mod.add_arguments(parser)
    if job == "evaluate":
        for action in parser._actions:
            if action.dest == "data":
                action.required = False
        parser.add_argument("--config")
        parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(job_args)
    config = getattr(args, "config", None)
    if config:
        if Path(config).is_absolute():
            say(f"note: --config {config} is an absolute path: it must exist on the head node")
        elif not (REPO / config).is_file():
            raise config_mod.ConfigError(f"--config {config}: not found under {REPO} (the job "
                                         f"runs in an uploaded copy of it)")
    if not hasattr(args, "overrides"):
        return
    cfg = config_mod.load(REPO / config if config and not Path(config).is_absolute() else config,
                          args.overrides)
    flat = config_mod.flatten(cfg)
    relative = [f"{k}={flat[k]}" for k in PATH_KEYS if flat.get(k)
                and not Path(str(flat[k])).is_absolute()]
    if relative:
        say("note: relative paths resolve inside the job's working-dir copy on the head node, "
            "which no other node sees and Ray deletes later: " + ", ".join(relative) +
            ". On a multi-node cluster set them to shared storage, e.g. "
            "--set data.root=/shared/demo --set train.storage=/shared/ray_results")
    if job in ("train", "tune", "demo") and not flat.get("train.storage"):
        say("note: train.storage is unset: checkpoints go to ray_results/ inside the job's "
            "working-dir copy; set --set train.storage=/shared/ray_results to keep them")


def job_env(extra: list[str]) -> dict[str, str]:
    """Environment variables of the job: MLflow URI, small-machine Ray Data setting, commit."""
    from pipeline import tracking

    env = {"RAY_DATA_PARQUET_FOOTER_NUM_ACTORS":
           os.environ.get("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1"),
           "DMT_GIT_COMMIT": tracking.git_commit(REPO)}
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri:
        env["MLFLOW_TRACKING_URI"] = tracking.resolve_tracking_uri(uri)
    for item in extra:
        if "=" not in item:
            raise SubmitError(f"--env {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        env[key] = value
    return env


async def _tail(client, job_id: str) -> None:
    async for chunk in client.tail_job_logs(job_id):
        sys.stdout.write(chunk)
        sys.stdout.flush()


def wait_for(client, job_id: str, poll: float = 2.0) -> str:
    """Stream the job's logs until it ends; return its final status."""
    import time

    try:
        asyncio.run(_tail(client, job_id))
    except Exception as exc:  # noqa: BLE001 - the log stream broke: fall back to polling
        print(f"[dmt submit] log stream ended early ({exc}); polling the job status",
              file=sys.stderr)
    while True:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL:
            return status
        time.sleep(poll)


def run(args: argparse.Namespace) -> int:
    prog = "dmt submit"
    job_args = list(args.job_args)
    if job_args[:1] == ["--"]:
        job_args = job_args[1:]
    working_dir = Path(args.working_dir).resolve()
    entry = working_dir / "jobs" / f"{args.job}.py"
    if not entry.is_file():
        print(f"{prog}: {entry} not found (--working-dir must be this repo)", file=sys.stderr)
        return 2
    check_job_args(args.job, job_args, say=lambda m: print(f"[dmt submit] {m}", file=sys.stderr))
    address = args.address or default_address()
    try:
        env = job_env(args.env)
        if "MLFLOW_TRACKING_URI" not in env:
            print("[dmt submit] note: MLFLOW_TRACKING_URI is not set: the job logs to "
                  "mlflow.db inside its working-dir copy on the head node (or the config's "
                  "tracking.uri); export MLFLOW_TRACKING_URI=http://... to collect runs",
                  file=sys.stderr)
        client = connect(address, args.token_file)
        entrypoint = f"python jobs/{args.job}.py {shlex.join(job_args)}".rstrip()
        from ray.exceptions import AuthenticationError

        try:
            job_id = client.submit_job(
                entrypoint=entrypoint, submission_id=args.submission_id,
                runtime_env={"working_dir": str(working_dir), "excludes": [".git"],
                             "env_vars": env},
                metadata={"dmt_job": args.job})
        except AuthenticationError:
            raise SubmitError(auth_hint(address)) from None
    except SubmitError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    print(f"[dmt submit] submitted {job_id} to {address}: {entrypoint}", file=sys.stderr)
    if args.no_wait:
        print(job_id)
        print(f"[dmt submit] follow it with: ray job logs --address {address} -f {job_id}; "
              f"list jobs with: dmt jobs --address {address}", file=sys.stderr)
        return 0
    try:
        status = wait_for(client, job_id)
    except KeyboardInterrupt:
        print(f"\n[dmt submit] stopped following; {job_id} keeps running. Stop it with: "
              f"ray job stop --address {address} {job_id}", file=sys.stderr)
        return 130
    info = client.get_job_info(job_id)
    print(f"[dmt submit] {job_id} {status}" + (f": {info.message}" if info.message else ""),
          file=sys.stderr)
    return 0 if status == "SUCCEEDED" else 1


# ------------------------------------------------------------------------------ listing

RUN_LINE = re.compile(r"MLflow (?:parent )?run: ([0-9a-f]{32})")
BROWSE_LINE = re.compile(r"browse:\s+(?:mlflow ui --backend-store-uri (\S+)|open (\S+) in a)")


def mlflow_run_of(logs: str, runtime_env: dict[str, Any] | None) -> tuple[str, str] | None:
    """(run id, tracking URI) printed by a finished training/tune job, or None."""
    runs = RUN_LINE.findall(logs or "")
    if not runs:
        return None
    uri = ((runtime_env or {}).get("env_vars") or {}).get("MLFLOW_TRACKING_URI", "")
    if not uri:
        browse = BROWSE_LINE.findall(logs)
        if browse:
            uri = browse[-1][0] or browse[-1][1]
    return runs[-1], uri or os.environ.get("MLFLOW_TRACKING_URI", "")
