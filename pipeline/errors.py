"""Errors the CLI prints as one line, without a traceback (kept free of heavy imports: the
``dmt`` entry point imports this module before any command runs)."""

import errno

# A full device, a full quota, or a file-size limit: the write cannot finish, whatever retries.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
NO_SPACE_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")


def no_space(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it; Ray re-raises a task's error as its text) is a write
    that met a full device."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        if any(text in str(exc) for text in NO_SPACE_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def no_space_path(exc: BaseException | None) -> str | None:
    """The file a full device refused, when the error (or its cause) names one."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS and exc.filename:
            return str(exc.filename)
        exc = exc.__cause__ or exc.__context__
    return None


class DiskFullError(RuntimeError):
    """A write met a full device: the message names the folder, the bytes still needed and
    free, and what a rerun does once there is space."""


class ClipError(Exception):
    """A clip that cannot be turned into a row; ``reason`` says why (one line). It becomes a
    quarantined entry, never a crash of the run (``pipeline.data.decode``)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ShardsError(ValueError):
    """A shards folder that cannot be trained or evaluated on: the message names the file and
    what is wrong (``pipeline.data.verify``)."""


class FolderLockedError(RuntimeError):
    """An output folder another live process is writing (``pipeline.locks``)."""


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking server did not answer for ``tracking.retry_s`` seconds."""


class ClusterCapacityError(RuntimeError):
    """The cluster could not hold the run's workers for ``train.capacity_wait_s`` (a node lost
    and not replaced)."""
