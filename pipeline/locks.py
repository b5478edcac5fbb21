"""One writer per output folder: a second `dmt preprocess` into the same shards folder, a second
`dmt train --resume` of the same run, `dmt tune --resume` of the same sweep or `dmt bench`
into the same ``--out`` is refused with a message naming the process that holds the folder.

The lock is ``fcntl.flock`` on a small file beside (or in) the folder, so the kernel drops it
when its process dies however it dies: a crashed or killed run never leaves a stale lock (no
pid-file guessing). It holds across the nodes of a cluster on a shared POSIX volume that
supports locks (NFSv4, CephFS, EFS); the file records who holds it, for the message.

    with FolderLock(out.with_name(f".{out.name}.lock"), f"dmt preprocess into {out}"):
        ...

Object storage (``s3://...``) has no advisory locks, and a lock object would outlive a crashed
holder (S3 cannot tie an object to a process). For such a folder the lock is the same flock on a
local file named after the URI (in the temp folder): it refuses a second writer on this machine
(where `dmt train` / `dmt preprocess` drivers run), not one started on another host; run a
cluster's drivers from one place (the head node, `dmt submit`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeline import locations
from pipeline.errors import FolderLockedError

__all__ = ["FolderLock", "FolderLockedError"]


class FolderLock:
    """An exclusive, non-blocking lock on ``path`` for ``what`` (said in the refusal)."""

    def __init__(self, path: str | os.PathLike | Any, what: str):
        self.path = local_lock_file(path)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderLockedError(
                f"{self.what}: refused, another process is writing there ({holder}); wait for it "
                f"to finish or stop it (its lock goes with it), or use another folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "command": " ".join(sys.argv[:3])[:200]}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def local_lock_file(path: str | os.PathLike | Any) -> Path:
    """The local file whose flock stands for ``path``: itself, or for an object-storage location
    (:class:`pipeline.locations.ObjectPath`) a file in the temp folder named after its URI."""
    if not locations.is_uri(path):
        return Path(path)
    uri = str(path)
    digest = hashlib.sha1(uri.encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"dmt-locks-{os.getuid()}" / f"{digest}.lock"


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    if not info:
        return "holder unknown"
    return (f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}, "
            f"`{info.get('command', '')}`")
