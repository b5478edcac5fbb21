"""The Ray job entry points under jobs/ and `dmt submit` / `dmt jobs`: each entry point runs its
own command's parser from any directory, and a job with a bad config, or an unreachable cluster,
stops with a clear error before Ray starts.

The cluster definitions under cluster/: tests/test_cluster_configs.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import ray_client

REPO = Path(__file__).resolve().parents[1]
JOBS = ("preprocess", "train", "tune", "evaluate", "demo")


# each job's own flag: the entry point runs its command's parser, not another one's
JOB_FLAGS = {"preprocess": "--videos", "train": "--resume RUN_OR_PATH", "tune": "--samples",
             "evaluate": "--checkpoint", "demo": "--config"}


@pytest.mark.parametrize("job", JOBS)
def test_job_entry_points_run_their_command(job, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, str(REPO / "jobs" / f"{job}.py"), "--help"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: jobs/{job}.py") and JOB_FLAGS[job] in out.stdout
    others = {flag for name, flag in JOB_FLAGS.items() if name != job} - {"--config"}
    assert not any(f in out.stdout for f in others), out.stdout


def test_job_help_runs_from_any_directory(tmp_path):
    # as on a cluster node: another cwd, no PYTHONPATH; the entry point finds its package
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, str(REPO / "jobs" / "train.py"), "--help"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage: jobs/train.py" in out.stdout and "--config" in out.stdout


def test_bad_config_exits_2_before_ray(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "jobs/train.py", "--config", "jobs/configs/smoke.yaml",
                          "--set", "dmt.tau=5"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "jobs/train.py" in out.stderr and "dmt.tau" in out.stderr
    assert "Started a local Ray instance" not in out.stdout + out.stderr
    assert time.perf_counter() - t0 < 60


def test_evaluate_job_needs_data_or_config():
    out = subprocess.run([sys.executable, "jobs/evaluate.py", "--checkpoint", "nowhere"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "--data" in out.stderr


def test_submit_checks_job_args_before_contacting_a_cluster():
    # the config is validated locally (exit 2); no cluster listens on this address
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "submit", "--address",
                          "http://127.0.0.1:9", "train", "--config", "jobs/configs/smoke.yaml",
                          "--set", "dmt.tau=5"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    assert "dmt.tau" in out.stderr


def test_submit_unreachable_cluster_is_a_clear_error():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAY_AUTH") and k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env["RAY_AUTH_MODE"] = "disabled"
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "jobs", "--address",
                          "http://127.0.0.1:9"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert "cannot reach the Ray dashboard at http://127.0.0.1:9" in out.stderr


def test_the_jobs_client_sends_the_token_from_ray_s_own_places(tmp_path, monkeypatch):
    """`dmt submit` / `dmt jobs` send the cluster token as a header through the client's
    public ``headers``: from --token-file, else RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH,
    ~/.ray/auth_token, and never with RAY_AUTH_MODE=disabled (the real cluster answers in
    tests/test_cluster.py)."""
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ray_client.auth_headers() == ({}, None)
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("home-token\n")
    assert ray_client.auth_headers()[0] == {"Authorization": "Bearer home-token"}
    (tmp_path / "t").write_text("path-token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "t"))
    assert ray_client.read_token() == ("path-token", f"RAY_AUTH_TOKEN_PATH ({tmp_path / 't'})")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "env-token")
    assert ray_client.read_token()[0] == "env-token"
    (tmp_path / "f").write_text(" file-token ")
    assert ray_client.read_token(str(tmp_path / "f"))[0] == "file-token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert ray_client.auth_headers() == ({}, None)
    with pytest.raises(ray_client.SubmitError, match="--token-file .*missing: no such file"):
        ray_client.read_token(str(tmp_path / "missing"))
