"""Errors the CLI prints as one line, without a traceback (kept free of heavy imports: the
``dmt`` entry point imports this module before any command runs)."""


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
