"""A node lost mid-run on a real two-node cluster (cluster/local/start.sh): every process of the
worker node is killed in stage 2.

- A replacement node joins 20 s later (cluster/local/add_worker.sh): Ray Train restarts the
  worker group from the last checkpoint and the job succeeds, one FINISHED MLflow run holding
  every epoch.
- No node comes back: the job waits ``train.capacity_wait_s`` and then fails with a message
  that says so (not a hang; Ray Train 2.60 alone retries the start of the worker group forever).

Long (two jobs of several minutes on 2 cores): ``make test-long``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_cluster import REPO, _env, demo_job_cmd, two_nodes  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.long]
KEY = "train/loss_total"
STAGE1, STAGE2 = 2, 5


def _session_members(sid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    out.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return out


def _kill_node(state: Path, name: str) -> int:
    """SIGKILL every process of node ``name`` (raylet, workers, agents): a lost node."""
    sid = next(int(pid) for n, pid in (line.split() for line in
                                       (state / "pids").read_text().splitlines()) if n == name)
    members = _session_members(sid)
    for pid in members:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(members)


def _wait_stage2(uri: str, experiment: str, seen: set[str], timeout: float = 600) -> str:
    from pipeline import tracking

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in tracking.search_runs(uri, experiment):
            steps = [s for s, _ in tracking.metric_history(uri, run.info.run_id, KEY)]
            if run.info.run_id not in seen and steps and max(steps) > STAGE1:
                return run.info.run_id
        time.sleep(1)
    raise AssertionError("stage 2 never started")


def _submit(address: str, auth: dict, tmp_path: Path, job_id: str, *extra: str):
    cmd = demo_job_cmd(address, job_id, tmp_path, f"train.stage1_epochs={STAGE1}",
                       f"train.stage2_epochs={STAGE2}", "tracking.heatmaps=0", *extra)
    log = (tmp_path / f"{job_id}.log").open("w")
    return subprocess.Popen(cmd, cwd=REPO, env=_env(**auth), stdout=log,
                            stderr=subprocess.STDOUT, text=True), tmp_path / f"{job_id}.log"


def test_a_lost_node_is_replaced_or_the_job_stops_after_capacity_wait(two_nodes, tmp_path):  # noqa: F811
    from pipeline import tracking

    address, state = two_nodes["address"], two_nodes["state"]
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": two_nodes["token"]}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = _env(DMT_CLUSTER_STATE=str(state))

    # 1. the worker node is lost in stage 2; a replacement joins 20 s later
    proc, log = _submit(address, auth, tmp_path, "dmt-node-loss")
    run_id = _wait_stage2(uri, "smoke", set())
    t_kill = time.monotonic()
    killed = _kill_node(state, "worker1")
    time.sleep(20)
    subprocess.run([str(REPO / "cluster/local/add_worker.sh"), "worker2"], env=env,
                   check=True, timeout=300, capture_output=True)
    assert proc.wait(timeout=1200) == 0, log.read_text()[-6000:]
    recovered = time.monotonic() - t_kill
    print(f"killed {killed} processes of worker1; job done {recovered:.0f} s after the kill")
    assert killed >= 3 and "dmt-node-loss SUCCEEDED" in log.read_text()
    run = tracking.get_run(uri, run_id)
    assert run.info.status == "FINISHED"
    assert int(run.data.tags["resumed_from_epoch"]) >= STAGE1  # from a checkpoint, not epoch 0
    steps = [s for s, _ in tracking.metric_history(uri, run_id, KEY)]
    assert sorted(set(steps)) == list(range(1, STAGE1 + STAGE2 + 1)), steps
    assert [r.info.run_id for r in tracking.search_runs(uri, "smoke")] == [run_id]

    # 2. lost again, and nothing comes back: stops after train.capacity_wait_s, says so
    proc, log = _submit(address, auth, tmp_path, "dmt-no-capacity",
                        "train.capacity_wait_s=60")
    _wait_stage2(uri, "smoke", {run_id})
    t_kill = time.monotonic()
    _kill_node(state, "worker2")
    assert proc.wait(timeout=900) != 0
    waited = time.monotonic() - t_kill
    text = log.read_text()
    print(f"no capacity: the job stopped {waited:.0f} s after the kill")
    assert "could not hold 2 training worker(s) for train.capacity_wait_s=60 s" in text, \
        text[-6000:]
    assert "dmt train --resume" in text
