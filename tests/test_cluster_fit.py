"""CPUs that fit in total but not per node, on a real two-node cluster of one CPU per node
(cluster/local/start.sh): the main job with two workers placed SPREAD would hold half a CPU on
each node, train stage 1, then wait forever for Ray Data's stage-2 stream (17 minutes seen, no
message). It is refused before any work, with the per-node numbers and a setting that fits;
the long test runs that setting to the end on the same cluster."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.test_cluster import REPO, _env, demo_job_cmd, local_cluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def one_cpu_nodes(tmp_path):
    with local_cluster(tmp_path, head_cpus=1, worker_cpus=1) as cluster:
        yield cluster


def _submit(cluster, tmp_path, job_id: str, *sets: str) -> tuple[int, str]:
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": cluster["token"]}
    cmd = demo_job_cmd(cluster["address"], job_id, tmp_path, *sets)
    done = subprocess.run(cmd, cwd=REPO, env=_env(**auth), text=True, capture_output=True,
                          timeout=900)
    return done.returncode, done.stdout + done.stderr


def test_spread_workers_that_leave_no_node_a_cpu_are_refused_before_any_work(one_cpu_nodes,
                                                                             tmp_path):
    t0 = time.perf_counter()
    code, out = _submit(one_cpu_nodes, tmp_path, f"dmt-fit-{int(time.time())}",
                        "train.placement_strategy=SPREAD")
    assert code != 0, out[-4000:]
    assert "2 worker(s) x 0.5 CPU placed SPREAD on 2 node(s)" in out, out[-4000:]
    assert "leaves 0.5, 0.5 CPU free; Ray Data's stage-2 stream needs 1 CPU free on one node" \
        in out, out[-4000:]
    assert "--set train.placement_strategy=PACK (it leaves 0, 1 CPU free" in out
    # before any work: nothing synthesised or preprocessed, no MLflow store, in seconds
    assert not (tmp_path / "smoke").exists() and not (tmp_path / "mlflow.db").exists()
    assert time.perf_counter() - t0 < 120


@pytest.mark.long
def test_the_setting_it_names_runs_to_the_end_on_the_same_nodes(one_cpu_nodes, tmp_path):
    code, out = _submit(one_cpu_nodes, tmp_path, f"dmt-fit-pack-{int(time.time())}",
                        "train.placement_strategy=PACK")
    assert code == 0, out[-6000:]
    assert "SUCCEEDED" in out
