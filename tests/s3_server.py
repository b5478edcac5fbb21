"""A real S3-compatible server for tests: moto's standalone server (``python -m moto.server``,
from PyPI) on 127.0.0.1, started and stopped by the test that uses it.

The credentials are the fake ones conftest puts in the environment before any Ray instance
starts (Ray workers inherit them); the endpoint travels in the URIs, as pyarrow's
``endpoint_override`` option, so Ray Data tasks and Ray Train workers reach the same server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from pipeline.ports import free_port


class S3Server:
    def __init__(self, port: int):
        self.port = port
        self.endpoint = f"127.0.0.1:{port}"

    def uri(self, bucket: str, key: str = "") -> str:
        """``s3://bucket/key`` with the endpoint options pyarrow (and so Ray) reads."""
        path = f"{bucket}/{key}".rstrip("/")
        return f"s3://{path}?endpoint_override={self.endpoint}&scheme=http"

    def filesystem(self):
        import pyarrow.fs

        return pyarrow.fs.S3FileSystem(endpoint_override=self.endpoint, scheme="http",
                                       allow_bucket_creation=True)

    def create_bucket(self, bucket: str) -> None:
        self.filesystem().create_dir(bucket)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (directory markers left out)."""
        import pyarrow.fs

        selector = pyarrow.fs.FileSelector(f"{bucket}/{prefix}".rstrip("/"), recursive=True,
                                           allow_not_found=True)
        return sorted(i.path[len(bucket) + 1:] for i in self.filesystem().get_file_info(selector)
                      if i.type == pyarrow.fs.FileType.File)


@contextmanager
def moto_server(timeout_s: float = 60.0):
    """Start ``moto.server`` on a free loopback port; yield an :class:`S3Server`; stop it."""
    port = free_port()
    # its request log goes to a file: a pipe nobody reads fills up and blocks the server
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited: {Path(log.name).read_text()[-800:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"moto not up on port {port} in {timeout_s} s") from None
                time.sleep(0.2)
        yield S3Server(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)
