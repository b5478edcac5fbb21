"""A private ``mlflow server`` on 127.0.0.1 over a local SQLite store (sweeps)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from mlflow.tracking import MlflowClient

from pipeline.ports import free_port
from pipeline.tracking.store import local_artifact_root


class LocalServer:
    """``mlflow server`` on 127.0.0.1 over a local SQLite store, for runs written by several
    processes at once (Tune trials): SQLite files do not take concurrent writers well.

    Artifacts are not proxied (``--no-serve-artifacts``): clients on this machine write them
    straight to the same folder a plain ``mlflow ui`` of the SQLite file reads. With
    ``artifacts_destination`` (e.g. ``s3://bucket/mlflow``) the server proxies them into that
    store instead, as a team server does: clients need no credentials for it, the server finds
    its own (the AWS chain, ``MLFLOW_S3_ENDPOINT_URL`` for a non-AWS endpoint).
    """

    def __init__(self, sqlite_uri: str, port: int = 0, artifacts_destination: str = ""):
        if not sqlite_uri.startswith("sqlite:///"):
            raise ValueError(f"LocalServer needs a sqlite:/// URI, got {sqlite_uri}")
        self.sqlite_uri, self.port, self.proc, self.log = sqlite_uri, port, None, None
        self.artifacts_destination = artifacts_destination

    def __enter__(self) -> str:
        if not self.port:
            self.port = free_port()
        MlflowClient(self.sqlite_uri).search_experiments()  # create the schema in-process first
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        if self.artifacts_destination:
            artifacts = ["--artifacts-destination", self.artifacts_destination]
        else:
            artifacts = ["--default-artifact-root", local_artifact_root(self.sqlite_uri),
                         "--no-serve-artifacts"]
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.sqlite_uri,
               *artifacts, "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        # its log goes to a temporary file: a pipe nobody reads would fill up during a
        # long sweep and block the server
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                tail = self.log.read().decode(errors="replace")[-800:]
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
                self.proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None
