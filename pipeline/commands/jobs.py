"""List the recent jobs of a Ray cluster (id, status, start time, entry point) and, for finished
training and tuning jobs, the MLflow run they logged (parsed from the "MLflow run: <id>" line of
the job's logs) with its link.

  dmt jobs                       # $RAY_API_SERVER_ADDRESS, or http://127.0.0.1:8265
  dmt jobs --address http://127.0.0.1:8265 --limit 5
"""

from __future__ import annotations

import argparse
import sys
import time

from pipeline.commands.submit import DEFAULT_ADDRESS, SubmitError, connect, default_address


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--address", default=None,
                        help=f"the cluster's dashboard URL (default: $RAY_API_SERVER_ADDRESS, "
                             f"else $RAY_ADDRESS if it is a URL, else {DEFAULT_ADDRESS})")
    parser.add_argument("--token-file", help="file holding the cluster's auth token")
    parser.add_argument("--limit", type=int, default=20, help="newest N jobs (default 20)")
    parser.add_argument("--no-runs", action="store_true",
                        help="do not read job logs for MLflow runs (faster)")


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _duration(start: int | None, end: int | None) -> str:
    if not start:
        return "-"
    seconds = ((end or time.time() * 1000) - start) / 1000
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _run_link(client, job, cache: dict) -> str:
    from pipeline.commands.submit import mlflow_run_of

    if str(job.status.value) != "SUCCEEDED" or not job.submission_id:
        return ""
    if not any(f"jobs/{name}.py" in (job.entrypoint or "") for name in ("train", "tune", "demo")):
        return ""
    try:
        found = mlflow_run_of(client.get_job_logs(job.submission_id), job.runtime_env)
    except Exception:  # noqa: BLE001 - logs may be gone (node removed); the listing goes on
        return ""
    if found is None:
        return ""
    run_id, uri = found
    from pipeline import tracking

    return tracking.run_link(uri, run_id, cache) if uri else f"MLflow run {run_id}"


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
            link = _run_link(client, job, cache)
            if link:
                print(f"{'':30s} -> {link}")
    return 0
