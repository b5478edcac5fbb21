"""Shared body of the Ray job entry points under ``jobs/`` (not a job itself).

Each ``jobs/<name>.py`` runs one ``dmt`` subcommand through ``pipeline.job_entry.main``, so
``ray job submit --working-dir . -- python jobs/train.py --config ...`` behaves like
``dmt train --config ...`` on the cluster the job runs in. The uploaded working dir (a copy of the
repo) goes first on ``sys.path``, so the job runs the submitted code even where the package is
installed from elsewhere (or not at all).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(command: str, argv: list[str] | None = None) -> int:
    if str(REPO) not in sys.path[:1]:
        sys.path.insert(0, str(REPO))
    from pipeline.job_entry import main as run_job

    return run_job(command, argv)
