"""How a training run that failed is reported: one error that says what stopped it and the
command that continues the run, instead of Ray Train's wrapped traceback.

- the tracking server unreachable for ``tracking.retry_s``;
- the cluster could not hold the workers, or feed them rows, for ``train.capacity_wait_s``
  (Ray Data's own no-progress guard included);
- a full device (a checkpoint, an MLflow artifact): the path, a checkpoint's bytes, the bytes
  free; a checkpoint Ray could not finish copying is deleted so no reader takes it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from pathlib import Path

from pipeline import config as config_mod
from pipeline.engine import checkpoint as ckpt_io
from pipeline.errors import (
    ClusterCapacityError,
    DiskFullError,
    TrackingUnavailableError,
    no_space,
    no_space_path,
)


def _resumable(run_path: Path, back: str) -> str:
    return (f"training stopped, its checkpoints are in {run_path}: once {back} is back, "
            f"`dmt train --resume {run_path}` continues the run")


def end_failed(logger, exc: Exception, run_path: Path, cfg: config_mod.Config) -> None:
    """Mark the run FAILED; when the tracking server, the cluster's capacity or a device's
    space is what failed, say so in one error, with the command that continues the run."""
    text = f"{type(exc).__name__} {exc}"
    if no_space(exc):
        with contextlib.suppress(Exception):  # the tracking store may share the full device
            logger.end("FAILED")
        raise disk_full_in_run(run_path, exc) from None
    if "ClusterCapacityError" in text or "ExecutionTimeoutError" in text:
        # a worker's data stream got no rows for train.capacity_wait_s, or Ray Data's own guard
        # (DataContext.execution_no_progress_timeout_s, 30 minutes) stopped the decoding of
        # the labeled and evaluation splits: no CPU for its tasks
        logger.end("FAILED")
        found = next((line for line in text.splitlines() if "delivered no rows" in line),
                     "Ray Data made no progress for DataContext.execution_no_progress_timeout_"
                     "s (its tasks could not be scheduled)")
        raise ClusterCapacityError(f"{found.split('ClusterCapacityError: ')[-1].strip()}; "
                                   f"{_resumable(run_path, 'the capacity')}") from None
    if "WorkerGroupStartupTimeoutError" in text or "worker group startup timed out" in text:
        logger.end("FAILED")
        raise ClusterCapacityError(
            f"the cluster could not hold {cfg.train.num_workers} training worker(s) for "
            f"train.capacity_wait_s={cfg.train.capacity_wait_s:g} s (a node lost and not "
            f"replaced?); {_resumable(run_path, 'the capacity')}") from None
    tracking_down = "TrackingUnavailableError" in text
    try:
        if tracking_down:
            logger.retry_s = min(logger.retry_s, 10.0)  # it was just given its full wait
        logger.end("FAILED")
    except TrackingUnavailableError:
        tracking_down = True
    if tracking_down:
        first = next((line for line in str(exc).splitlines() if "unreachable for" in line),
                     "the MLflow tracking server is unreachable")
        raise TrackingUnavailableError(
            f"{first.split('TrackingUnavailableError: ')[-1].strip()}; "
            f"{_resumable(run_path, 'the server')}") from None


def disk_full_in_run(run_path: Path, exc: BaseException, where: Path | None = None,
                     finished: bool = False) -> DiskFullError:
    """A training run stopped by a full device: the path that was written (the error's, else
    ``where``), the bytes a checkpoint takes and free there, the resume command. A checkpoint
    that Ray could not finish copying (a truncated ``state.pt``, a folder without one) is
    removed: no reader may take it for the run's latest. ``finished``: the training itself
    ended, what failed was logging its model."""
    named = no_space_path(exc)
    if named is None and (found := re.search(r"No space left on device: '([^']+)'", str(exc))):
        named = found.group(1)
    where = Path(named) if named else (where or run_path)
    whole = _whole_checkpoints(run_path)
    size = (whole[-1] / ckpt_io.FILENAME).stat().st_size if whole else 0
    probe = next((p for p in (where, *where.parents) if p.exists()), run_path)
    free = shutil.disk_usage(probe).free
    last = f"its last whole checkpoint is {whole[-1]}" if whole else "no checkpoint was kept"
    need = f"a checkpoint takes {size:,} bytes, " if size else ""
    state, then = (("training finished but its model was not logged", " and logs the model")
                   if finished else ("training stopped", ""))
    return DiskFullError(
        f"no space left on the device writing {where}: {need}{free:,} bytes free there; "
        f"{state}, {last}: free space, then `dmt train --resume {run_path}` continues the "
        f"run{then}")


def _whole_checkpoints(run_path: Path) -> list[Path]:
    """The run's checkpoint folders that load, oldest first; the others are deleted."""
    whole = []
    for folder in sorted(p for p in run_path.glob("checkpoint_*") if p.is_dir()):
        try:
            ckpt_io.load(folder / ckpt_io.FILENAME)
            whole.append(folder)
        except (OSError, ValueError):
            shutil.rmtree(folder, ignore_errors=True)
    return whole


def print_worker_errors(exc: Exception) -> None:
    """Each failed worker's whole traceback on stderr: Ray Train's own message keeps the first
    and last 500 characters of it ("Output truncated"), which hides the cause, and the
    workers' output is not on the console (``pipeline.console``)."""
    for rank, error in sorted((getattr(exc, "worker_failures", None) or {}).items()):
        print(f"[train] worker {rank} failed:\n{error}", file=sys.stderr, flush=True)
