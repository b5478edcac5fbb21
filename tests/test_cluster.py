"""A real two-node Ray cluster on this machine: cluster/local/start.sh, `dmt submit demo` through
the Jobs API with token authentication, then checks on the job, the nodes, the training workers'
placement and the MLflow store.

Resources are explicit and small: head 3 logical CPUs, worker node 2, 4 GB / 500 MB each. The
job asks for two training workers with ``train.placement_strategy=STRICT_SPREAD`` (one per node;
Ray Train's default PACK would put both on the head); the head keeps CPUs free for the job's
driver and Ray Data's ListFiles task (it asks for 1 CPU whatever read_parquet's num_cpus says).

Only processes this test starts are stopped (cluster/local/stop.sh over a private state dir);
never `ray stop`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
pytestmark = [pytest.mark.slow, pytest.mark.cluster]

CLIENT_ENV_DROP = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                   "RAY_AUTH_TOKEN_PATH", "MLFLOW_TRACKING_URI")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV_DROP}
    env.update(extra)
    return env


@contextlib.contextmanager
def local_cluster(tmp_path: Path, head_cpus: int = 3, worker_cpus: int = 2):
    """cluster/local/start.sh with one worker node, everything under ``tmp_path``; stopped
    (cluster/local/stop.sh) whatever happens."""
    state = tmp_path / "state"
    temp_dir = tempfile.mkdtemp(prefix="dmt-ray-t", dir="/tmp")  # short: socket path limit
    gcs, dash = _free_port(), _free_port()
    env = _env(DMT_CLUSTER_STATE=str(state), DMT_RAY_TEMP_DIR=temp_dir,
               DMT_HEAD_CPUS=str(head_cpus), DMT_WORKER_CPUS=str(worker_cpus),
               DMT_NODE_MEMORY="4GB", DMT_OBJECT_STORE_MEMORY="500MB", DMT_MLFLOW="0",
               DMT_GCS_PORT=str(gcs), DMT_DASHBOARD_PORT=str(dash))
    t0 = time.perf_counter()
    start = subprocess.run([str(REPO / "cluster/local/start.sh"), "1"], env=env, text=True,
                           capture_output=True, timeout=400)
    try:
        assert start.returncode == 0, f"start.sh failed:\n{start.stdout}\n{start.stderr}"
        print(f"cluster up in {time.perf_counter() - t0:.0f} s")
        token = (state / "auth_token").read_text().strip()
        assert (state / "auth_token").stat().st_mode & 0o777 == 0o600
        yield {"address": f"http://127.0.0.1:{dash}", "gcs": f"127.0.0.1:{gcs}",
               "token": token, "state": state}
    finally:
        stop = subprocess.run([str(REPO / "cluster/local/stop.sh")], env=env, text=True,
                              capture_output=True, timeout=180)
        print(stop.stdout, stop.stderr)
        pids = state / "pids"
        assert not pids.exists(), f"stop.sh left processes: {stop.stdout}\n{stop.stderr}"


@pytest.fixture
def two_nodes(tmp_path):
    with local_cluster(tmp_path) as cluster:
        yield cluster


INSPECT = r"""
import json, sys
from ray.job_submission import JobSubmissionClient
from ray.util.state import list_actors, list_nodes
address, job_id = sys.argv[1], sys.argv[2]
client = JobSubmissionClient(address)
nodes = list_nodes(address=address, filters=[("state", "=", "ALIVE")])
workers = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker")],
                      detail=True, limit=100)
print(json.dumps({
    "status": str(client.get_job_status(job_id).value),
    "nodes": sorted(n.node_id for n in nodes),
    "workers": [{"node_id": a.node_id, "pid": a.pid, "state": a.state} for a in workers],
}))
"""


def demo_job_cmd(address: str, job_id: str, tmp_path: Path, *sets: str) -> list[str]:
    """`dmt submit demo` of the smoke config with two training workers, one per node, its data,
    Ray storage and MLflow store (``tmp_path/mlflow.db``) under ``tmp_path``; ``sets``: more
    ``KEY=VALUE`` overrides."""
    base = [f"data.root={tmp_path / 'smoke'}", f"train.storage={tmp_path / 'ray_results'}",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "train.num_workers=2",
            "train.placement_strategy=STRICT_SPREAD", *sets]
    return [PY, "-m", "pipeline.cli", "submit", "--address", address, "--submission-id", job_id,
            "demo", "--config", "jobs/configs/smoke.yaml",
            *[arg for item in base for arg in ("--set", item)]]


def test_two_node_demo_job(two_nodes, tmp_path):
    address, token = two_nodes["address"], two_nodes["token"]
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}

    # A wrong token is refused with a clear message, before anything is uploaded.
    bad = subprocess.run([PY, "-m", "pipeline.cli", "jobs", "--address", address], cwd=REPO,
                         env=_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64), text=True,
                         capture_output=True, timeout=120)
    assert bad.returncode == 1
    assert "authentication failed" in bad.stderr

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job_id = f"dmt-test-{int(time.time())}"
    cmd = demo_job_cmd(address, job_id, tmp_path, "train.cpus_per_worker=1",
                       "tracking.heatmaps=1")
    t0 = time.perf_counter()
    log = tmp_path / "submit.log"
    with log.open("w") as out:
        proc = subprocess.run(cmd, cwd=REPO, env=_env(**auth), stdout=out,
                              stderr=subprocess.STDOUT, text=True, timeout=600)
    wall = time.perf_counter() - t0
    text = log.read_text()
    print(f"two-node smoke job: {wall:.0f} s wall (submit to exit)")
    assert proc.returncode == 0, f"dmt submit exited {proc.returncode}:\n{text[-6000:]}"
    assert f"{job_id} SUCCEEDED" in text
    assert "MLflow run: " in text

    inspect = subprocess.run([PY, "-c", INSPECT, address, job_id], cwd=REPO,
                             env=_env(**auth), text=True, capture_output=True, timeout=180)
    assert inspect.returncode == 0, inspect.stderr[-3000:]
    facts = json.loads(inspect.stdout.strip().splitlines()[-1])
    assert facts["status"] == "SUCCEEDED"
    assert len(facts["nodes"]) == 2, facts
    # the last worker group (a restarted group would add more actors)
    workers = facts["workers"][-2:]
    assert len(workers) == 2, facts
    assert {w["node_id"] for w in workers} == set(facts["nodes"]), \
        f"the two training workers did not run on the two nodes: {facts}"

    listing = subprocess.run([PY, "-m", "pipeline.cli", "jobs", "--address", address],
                             cwd=REPO, env=_env(**auth), text=True, capture_output=True,
                             timeout=180)
    assert listing.returncode == 0, listing.stderr[-3000:]
    assert job_id in listing.stdout and "SUCCEEDED" in listing.stdout

    from pipeline import tracking

    runs = tracking.search_runs(uri, "smoke")
    assert [r.info.status for r in runs] == ["FINISHED"], [(r.info.run_id, r.info.status)
                                                          for r in runs]
    run = runs[0]
    assert run.info.run_id in text
    assert run.data.params["train.num_workers"] == "2"
    assert run.data.params["train.placement_strategy"] == "STRICT_SPREAD"
    assert any(k.startswith("test/") for k in run.data.metrics), sorted(run.data.metrics)
    assert "checkpoint" in tracking.list_artifacts(uri, run.info.run_id)
    assert tracking.run_model_id(uri, run.info.run_id)  # the logged MLflow model
    assert f"/runs/{run.info.run_id}" in listing.stdout  # dmt jobs links the run

    _relative_data_root_is_refused(address, auth, job_id, uri)


def _relative_data_root_is_refused(address: str, auth: dict, job_id: str, uri: str) -> None:
    """A relative data.root lives in the job's copy of the working dir, which is a different
    folder on every node: refused before any work (it used to die inside Ray Data)."""
    rel = subprocess.run([PY, "-m", "pipeline.cli", "submit", "--address", address,
                          "--submission-id", f"{job_id}-relative", "demo", "--config",
                          "jobs/configs/smoke.yaml", "--set", f"tracking.uri={uri}"],
                         cwd=REPO, env=_env(**auth), text=True, capture_output=True, timeout=300)
    out = rel.stdout + rel.stderr
    assert rel.returncode != 0, out[-3000:]
    assert "inside this job's copy of the working dir, a different folder on each of the " \
           "cluster's 2 nodes" in out, out[-3000:]
    assert "Traceback" not in out.split("inside this job's copy")[0][-2000:]
