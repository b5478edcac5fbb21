"""What reaches the terminal: our own lines, and the libraries' logs only with ``--verbose``.

A run's console is one line per phase, one per epoch, the final table and the links. Ray's,
Ray Data's and MLflow's own INFO logs (plans, progress, start-up notices) stay in their log
files (Ray's session folder, ``<session>/logs``; Ray Data's ``ray-data.log`` there) unless
``--verbose`` (or ``DMT_VERBOSE=1``) asks for them. Warnings and errors still print, and an
error in a worker reaches the console in full as the exception ``trainer.fit()`` raises.
"""

from __future__ import annotations

import logging
import os

VERBOSE_ENV = "DMT_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0", "false", "False")


def configure(verbose_flag: bool = False) -> None:
    """Set the verbosity for this process and the Ray workers it starts (they inherit the
    environment). Called by the CLI before any library is imported."""
    if verbose_flag:
        os.environ[VERBOSE_ENV] = "1"
    if not verbose():
        # read by MLflow when it is imported (here and in every worker): its INFO lines
        # ("Creating initial MLflow database tables...") are start-up noise
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        # a progress bar per artifact download (`--model runs:/...`: nine bars for one model)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def ray_init_options() -> dict:
    """``ray.init`` keyword arguments: worker output stays in the workers' log files, and the
    driver's own Ray logger prints warnings only, unless verbose."""
    if verbose():
        return {"log_to_driver": True}
    return {"log_to_driver": False, "logging_level": logging.WARNING}


def quiet_ray_data() -> None:
    """Ray Data's plans and progress lines of the datasets the driver runs (preprocessing, the
    splits materialised before training) go to ``ray-data.log`` only. Its file handler keeps
    them; only the console handler is raised to WARNING."""
    if verbose():
        return
    import ray.data  # noqa: F401 - configures the "ray.data" logger and its handlers

    for handler in logging.getLogger("ray.data").handlers:
        # the console handler (Ray's PlainRayHandler on stderr), not the session file's
        if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
            if not any(isinstance(f, _DropNotices) for f in handler.filters):
                handler.addFilter(_DropNotices())


class _DropNotices(logging.Filter):
    """Ray Data's warning that progress bars are off: we turned them off on purpose (the
    epoch lines would interleave with them)."""

    NOTICES = ("Progress bars disabled.",)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOTICES)


def log_folder() -> str | None:
    """Where this Ray session's log files are: Ray's documented default, the ``session_latest``
    link in its temp folder on the node that started the session (None before Ray starts)."""
    import ray  # heavy: on use (this module loads with `dmt --help`)

    if not ray.is_initialized():
        return None
    folder = os.path.join(os.environ.get("RAY_TMPDIR", "/tmp/ray"), "session_latest", "logs")
    return folder if not os.environ.get("RAY_ADDRESS") else f"{folder} on the head node"
