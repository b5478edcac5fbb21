"""A private ``mlflow server`` on 127.0.0.1 over a local SQLite store (sweeps)."""

from __future__ import annotations

import os
import subprocess

from mlflow.tracking import MlflowClient

from pipeline.ports import free_port
from pipeline.tracking.store import local_artifact_root


class LocalServer:
    """``mlflow server`` on 127.0.0.1 over a local SQLite store, for runs written by several
    processes at once (Tune trials): SQLite files do not take concurrent writers well.

    Artifacts are not proxied (``--no-serve-artifacts``): clients on this machine write them
    straight to the same folder a plain ``mlflow ui`` of the SQLite file reads.
    """

    def __init__(self, sqlite_uri: str, port: int = 0):
        if not sqlite_uri.startswith("sqlite:///"):
            raise ValueError(f"LocalServer needs a sqlite:/// URI, got {sqlite_uri}")
        self.sqlite_uri, self.port, self.proc = sqlite_uri, port, None

    def __enter__(self) -> str:
        import sys
        import time
        import urllib.request

        if not self.port:
            self.port = free_port()
        MlflowClient(self.sqlite_uri).search_experiments()  # create the schema in-process first
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.sqlite_uri,
               "--default-artifact-root", local_artifact_root(self.sqlite_uri),
               "--no-serve-artifacts", "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", "1"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                tail = self.proc.stderr.read().decode()[-800:]
                raise RuntimeError(f"mlflow server exited: {tail}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return url
            except OSError:
                time.sleep(0.5)
        self.__exit__(None, None, None)
        raise RuntimeError(f"mlflow server did not answer on {url} within 90 s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
