"""A worker node lost in the middle of `dmt preprocess`, on a real two-node cluster
(cluster/local/start.sh): every process of the worker node is SIGKILLed while its decode tasks
run, after some shards are written. Ray Data runs the lost tasks again on the head; the result
is every input exactly once (a row or a quarantined entry), no shard written twice or half, a
consistent summary.json, and the same shards as an undisturbed run on the same cluster, every
column. The test prints what the loss cost: wall time against the undisturbed run, and the
decode tasks that died with the node (each a group of ``rows_per_file`` clips decoded again).

Long (two preprocessing runs of 600 clips on 2 cores): ``make test-long``.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.data import load_quarantine, read_shards
from tests.media import sine, write_clip
from tests.test_cluster import REPO, _env, local_cluster
from tests.test_cluster_faults import _kill_node

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.long]
ROWS_PER_FILE = 20


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """600 inputs: 12 real 10 s clips (320x240 H.264, 44.1 kHz stereo AAC), each listed 50
    times under its own ids (the same decode work per input)."""
    folder = tmp_path_factory.mktemp("lost_node")
    for i in range(12):
        write_clip(folder / "clips" / f"v{i:02d}.mp4", seconds=10.0, fps=25, width=320,
                   height=240, sample_rate=44100,
                   audio=sine(200 + 50 * i, 10.0, 44100, channels=2), jump=True)
    path = folder / "clips.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "path"])
        for k in range(50):
            for i in range(12):
                writer.writerow([f"c{k:02d}_{i:02d}", f"clips/v{i:02d}.mp4"])
    return path


def _preprocess(cluster, manifest: Path, out: Path) -> subprocess.Popen:
    env = _env(RAY_ADDRESS=cluster["gcs"], RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=cluster["token"])
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "preprocess", "--videos",
                             str(manifest), "--out", str(out), "--engine", "ray", "--set",
                             f"data.rows_per_file={ROWS_PER_FILE}", "--set",
                             "data.decode_concurrency=4"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _lost_tasks(cluster) -> int:
    """Decode tasks that failed (died with the node) in the cluster's task history: each is a
    group of clips that was being decoded when the node went and is decoded again."""
    code = ("import sys\nfrom ray.util.state import list_tasks\n"
            "tasks = list_tasks(address=sys.argv[1], filters=[('state', '=', 'FAILED')], "
            "limit=10000, raise_on_missing_output=False)\n"
            "print(sum(1 for t in tasks if 'DecodeAndWrite' in t.name))\n")
    done = subprocess.run([sys.executable, "-c", code, cluster["address"]], cwd=REPO,
                          env=_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=cluster["token"]),
                          capture_output=True, text=True, timeout=120)
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else -1


def _rows(out: Path) -> list[dict]:
    return sorted(read_shards(out).to_pylist(), key=lambda r: r["id"])


def test_a_worker_node_lost_mid_preprocess(manifest, tmp_path):
    with local_cluster(tmp_path, head_cpus=2, worker_cpus=2) as cluster:
        t0 = time.perf_counter()
        calm = _preprocess(cluster, manifest, tmp_path / "calm")
        log = calm.communicate(timeout=900)[0]
        assert calm.returncode == 0, log[-3000:]
        undisturbed = time.perf_counter() - t0

        out = tmp_path / "lost"
        partial = out.with_name(f".{out.name}.partial")
        t0 = time.perf_counter()
        proc = _preprocess(cluster, manifest, out)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and len(list(partial.glob("part-*.parquet"))) < 5:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            time.sleep(0.2)
        shards_before = len(list(partial.glob("part-*.parquet")))
        killed = _kill_node(cluster["state"], "worker1")
        log = proc.communicate(timeout=900)[0]
        disturbed = time.perf_counter() - t0
        lost = _lost_tasks(cluster)
    assert proc.returncode == 0, log[-4000:]
    shards = len(list((tmp_path / "calm").glob("part-*.parquet")))
    print(f"node lost after {shards_before} of {shards} shards ({killed} processes killed): "
          f"{disturbed:.0f} s against {undisturbed:.0f} s undisturbed; {lost} decode task(s) "
          f"died with the node (up to {max(lost, 0) * ROWS_PER_FILE} clips decoded twice)")

    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"] == 600 == summary["rows"] + summary["quarantined"]
    files = sorted(out.glob("part-*.parquet"))
    # shard names derive from the clips they hold: the same groups as the undisturbed run's
    assert [f.name for f in files] == sorted(f.name for f in (tmp_path / "calm").glob(
        "part-*.parquet")) == sorted(s["file"] for s in summary["shards"])
    assert sum(pq.read_metadata(f).num_rows for f in files) == summary["rows"]
    assert not list(out.glob(".*")) and not partial.exists()  # no temp or half files
    ids = [r["id"] for r in _rows(out)]
    assert len(ids) == len(set(ids)) == 600  # every input exactly once
    assert _rows(out) == _rows(tmp_path / "calm")  # every column of every row
    assert load_quarantine(out) == load_quarantine(tmp_path / "calm") == []
