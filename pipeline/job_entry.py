"""The body of every Ray job entry point: one ``dmt`` subcommand, run as a job's driver.

``python -m pipeline.job_entry JOB ARGS`` (what ``dmt submit`` runs when the cluster has the
package installed) and ``python jobs/JOB.py ARGS`` (the repository's entry points, what it runs
with the repository uploaded as the working dir) behave like ``dmt JOB ARGS`` on the cluster the
job runs in:

- Ray: the commands call ``pipeline.ray_env.ensure_ray``, which joins the job's cluster (Ray sets
  ``RAY_ADDRESS`` for a job's driver);
- MLflow: ``$MLFLOW_TRACKING_URI`` (pass it in the job's runtime env; ``dmt submit`` does); runs
  are tagged with the job's submission id, which ``dmt jobs`` looks them up by;
- exit status: 0 on success, 2 for a bad config or arguments (before Ray starts), 1 for any
  other failure, with a one-line ``jobs/<name>.py: error: ...`` on stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from pipeline.commands import COMMANDS
from pipeline.commands.job_args import JOBS, job_parser, prepare_job_args
from pipeline.config import ConfigError


def main(job: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse ``argv`` with ``job``'s parser and run its command; return the exit status."""
    prog = prog or f"jobs/{job}.py"
    argv = sys.argv[1:] if argv is None else argv
    # Small machines: one Parquet footer reader instead of Ray Data's 32 actors.
    os.environ.setdefault("RAY_DATA_PARQUET_FOOTER_NUM_ACTORS", "1")
    mod = importlib.import_module(f"pipeline.commands.{COMMANDS[job][0]}")
    args = job_parser(job, prog).parse_args(argv)  # usage errors: argparse exits 2
    try:
        prepare_job_args(job, args)
        return int(mod.run(args) or 0)
    except ConfigError as exc:
        print(f"{prog}: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the job's exit status is the report
        traceback.print_exc()
        print(f"{prog}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in JOBS:
        print(f"usage: python -m pipeline.job_entry {{{','.join(JOBS)}}} [ARGS...]",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2:], prog=f"pipeline.job_entry {sys.argv[1]}"))
