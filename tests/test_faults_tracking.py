"""The tracking server restarts mid-run: training goes on and the run ends FINISHED with every
epoch's metrics once; a server that stays away stops the run with one clear error after a
bounded time, and `--resume` continues it once the server is back. A real `mlflow server`.

The whole-run test takes about 4 minutes on 2 cores (three smoke trainings and a 30 s outage):
``make test-long``; the retry itself, against a real server that restarts, is in ``make test``."""

from __future__ import annotations

import re
import threading
import time

import pytest

from pipeline import config as C
from pipeline import tracking
from pipeline.errors import TrackingUnavailableError
from pipeline.tracking.server import LocalServer

KEY = "train/loss_total"  # logged once per epoch


def _with(cfg: C.Config, *overrides: str) -> C.Config:
    out = C.from_dict(C.to_dict(cfg))
    for text in overrides:
        C.set_key(out, *C.parse_override(text))
    return out


def _wait_first_epoch(db_uri: str, experiment: str, timeout: float = 300) -> str:
    """The run id, once its first epoch's metrics are in the store (read from the file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in tracking.search_runs(db_uri, experiment):
            if tracking.metric_history(db_uri, run.info.run_id, KEY):
                return run.info.run_id
        time.sleep(0.5)
    raise AssertionError("no epoch was logged")


def _in_thread(fn, *args, **kwargs) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def target():
        try:
            box["out"] = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def test_a_call_waits_for_a_restarting_server_and_gives_up_after_retry_s(tmp_path):
    from mlflow.exceptions import MlflowException

    db_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with LocalServer(db_uri) as url:
        run_id = tracking.start_run(url, "retry", "r", {"a": 1})
    server = LocalServer(db_uri, port=int(url.rsplit(":", 1)[1]))
    restarter = threading.Timer(8.0, server.__enter__)
    restarter.start()
    logger = tracking.RunLogger(url, run_id, retry_s=120)
    t0 = time.monotonic()
    try:
        logger.log_metrics({"m": 1.0}, step=1)  # the server is down for about 8 s + start-up
        assert time.monotonic() - t0 >= 8
        assert tracking.metric_history(db_uri, run_id, "m") == [(1, 1.0)]
        # an error the server answers is not retried (a bad run id fails at once)
        t1 = time.monotonic()
        with pytest.raises(MlflowException):
            tracking.RunLogger(url, "0" * 32, retry_s=120).log_metrics({"m": 1.0}, step=1)
        assert time.monotonic() - t1 < 10
    finally:
        restarter.join()
        server.__exit__()
    t2 = time.monotonic()
    with pytest.raises(TrackingUnavailableError, match=rf"{url} unreachable for 3 s"):
        tracking.RunLogger(url, run_id, retry_s=3).log_metrics({"m": 2.0}, step=2)
    assert time.monotonic() - t2 < 30


@pytest.mark.slow
@pytest.mark.long
def test_a_30_s_server_restart_is_survived_and_a_long_outage_resumes(smoke_base, tmp_path):
    from pipeline.train.driver import fit

    db_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    server = LocalServer(db_uri)
    url = server.__enter__()
    epochs = 4
    base = _with(smoke_base, f"tracking.uri={url}", f"train.storage={tmp_path / 'ray'}",
                 "train.stage1_epochs=1", "train.stage2_epochs=3", "tracking.heatmaps=0")
    try:
        # 1. stopped for 30 s after the first epoch, started again on the same port
        cfg = _with(base, "tracking.experiment=restart")
        thread, box = _in_thread(fit, cfg, say=lambda *_: None)
        run_id = _wait_first_epoch(db_uri, "restart")
        server.__exit__()
        time.sleep(30)
        server = LocalServer(db_uri, port=server.port)
        server.__enter__()
        thread.join(timeout=600)
        assert "error" not in box, box.get("error")
        assert tracking.get_run(db_uri, run_id).info.status == "FINISHED"
        steps = [s for s, _ in tracking.metric_history(db_uri, run_id, KEY)]
        assert steps == list(range(1, epochs + 1))  # every epoch, once

        # 2. stopped for good after the first epoch: a clear error within a bounded time
        cfg = _with(base, "tracking.experiment=outage", "tracking.retry_s=5")
        thread, box = _in_thread(fit, cfg, say=lambda *_: None)
        run_id = _wait_first_epoch(db_uri, "outage")
        server.__exit__()
        t0 = time.monotonic()
        thread.join(timeout=600)
        waited = time.monotonic() - t0
        error = box.get("error")
        assert isinstance(error, TrackingUnavailableError), repr(error)
        assert f"MLflow tracking server {url} unreachable for 5 s" in str(error)
        # the worker group is retried twice (train.max_failures) from its checkpoint
        assert waited < 3 * 5 + 120, waited
        run_path = re.search(r"dmt train --resume (\S+)`", str(error)).group(1)
        # back again: --resume continues from the checkpoint and finishes the same run
        server = LocalServer(db_uri, port=server.port)
        server.__enter__()
        fit(cfg, resume=run_path, say=lambda *_: None)
        assert tracking.get_run(db_uri, run_id).info.status == "FINISHED"
        steps = sorted({s for s, _ in tracking.metric_history(db_uri, run_id, KEY)})
        assert steps == list(range(1, epochs + 1))
    finally:
        server.__exit__()
