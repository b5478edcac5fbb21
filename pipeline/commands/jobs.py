"""List the recent jobs of a Ray cluster (id, status, start time, entry point) and, for finished
training, tuning and demo jobs, the MLflow run they logged with its link: the job's metadata names
its MLflow store (``dmt submit`` records it) and its runs carry the job's submission id (tag
``ray.submission_id``).

  dmt jobs                       # $RAY_API_SERVER_ADDRESS, or http://127.0.0.1:8265
  dmt jobs --address http://127.0.0.1:8265 --limit 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from pipeline.commands.submit import URI_METADATA
from pipeline.ray_client import DEFAULT_ADDRESS, SubmitError, connect, default_address


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--address", default=None,
                        help=f"the cluster's dashboard URL (default: $RAY_API_SERVER_ADDRESS, "
                             f"else $RAY_ADDRESS if it is a URL, else {DEFAULT_ADDRESS})")
    parser.add_argument("--token-file", help="file holding the cluster's auth token")
    parser.add_argument("--limit", type=int, default=20, help="newest N jobs (default 20)")
    parser.add_argument("--no-runs", action="store_true",
                        help="do not look up the jobs' MLflow runs (faster)")
    parser.add_argument("--tracking-uri", default="",
                        help="MLflow store of jobs whose metadata names none (default: "
                             "$MLFLOW_TRACKING_URI)")


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _duration(start: int | None, end: int | None) -> str:
    if not start:
        return "-"
    seconds = ((end or time.time() * 1000) - start) / 1000
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _run_link(job, fallback_uri: str, cache: dict) -> str:
    """The link of the MLflow run a finished job logged ('' when there is none to find)."""
    # heavy (torch, Ray or MLflow): imported when the command runs, see pipeline/commands/__init__
    from pipeline import tracking

    if str(job.status.value) != "SUCCEEDED" or not job.submission_id:
        return ""
    if (job.metadata or {}).get("dmt_job") not in ("train", "tune", "demo", None):
        return ""
    uri = (job.metadata or {}).get(URI_METADATA) or fallback_uri
    if not uri:
        return ""
    try:
        runs = tracking.runs_of_submission(uri, job.submission_id)
    except Exception as exc:  # noqa: BLE001 - a store not readable from here: say so, go on
        return f"MLflow store {uri} not readable from here ({type(exc).__name__})"
    return tracking.run_link(uri, runs[0].info.run_id, cache) if runs else ""


def run(args: argparse.Namespace) -> int:
    address = args.address or default_address()
    try:
        client = connect(address, args.token_file)
    except SubmitError as exc:
        print(f"dmt jobs: {exc}", file=sys.stderr)
        return 1
    jobs = sorted(client.list_jobs(), key=lambda j: j.start_time or 0, reverse=True)
    jobs = jobs[: max(args.limit, 0)]
    if not jobs:
        print(f"no jobs on {address}")
        return 0
    cache: dict = {}
    print(f"{'job':30s} {'status':10s} {'started':19s} {'took':>6s}  entrypoint")
    for job in jobs:
        ident = job.submission_id or job.job_id or "-"
        entry = (job.entrypoint or "").strip()
        entry = entry if len(entry) <= 90 else entry[:87] + "..."
        print(f"{ident:30s} {str(job.status.value):10s} {_when(job.start_time):19s} "
              f"{_duration(job.start_time, job.end_time):>6s}  {entry}")
        if not args.no_runs:
            link = _run_link(job, args.tracking_uri or os.environ.get(
                "MLFLOW_TRACKING_URI", ""), cache)
            if link:
                print(f"{'':30s} -> {link}")
    return 0
