"""Two runs, one folder: the second is refused with the holder named; a killed holder leaves no
stale lock (the kernel drops an flock with its process), and nothing is interleaved."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import config as C
from pipeline.locks import FolderLock, FolderLockedError

REPO = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; sys.path.insert(0, sys.argv[3]); from pipeline.locks import FolderLock;"
        " FolderLock(sys.argv[1], sys.argv[2]).acquire(); print('held', flush=True);"
        " time.sleep(600)")


def _holder(path: Path) -> subprocess.Popen:
    """Another process holding the lock at ``path`` until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "holder", str(REPO)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    lock = tmp_path / "out" / ".dmt.lock"
    proc = _holder(lock)
    try:
        with pytest.raises(FolderLockedError, match=rf"refused, another process is writing there "
                                                    rf"\(pid {proc.pid} on "):
            FolderLock(lock, "test folder").acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with FolderLock(lock, "test folder"):  # no stale lock after a crash
        assert json.loads(lock.read_text())["pid"] != proc.pid


def test_two_preprocess_runs_into_one_folder(synth_small, tmp_path, capsys):
    """A real `dmt preprocess` paused mid-run holds the folder; a second is refused (exit 3);
    once the first is killed, a rerun resumes its partial folder and every clip is one row."""
    from pipeline.cli import main
    from pipeline.data.reader import read_shards

    out = tmp_path / "shards"
    args = ["preprocess", "--videos", str(synth_small / "videos"), "--out", str(out),
            "--annotations", str(synth_small / "annotations.json"), "--format", "synth",
            "--lists", str(synth_small), "--engine", "local", "--no-log"]
    first = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = out.with_name(f".{out.name}.partial")
    deadline = time.monotonic() + 120
    while not any(partial.glob("*")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # inside its lock, mid-decode
    try:
        assert first.poll() is None, "the first run ended before it could be paused"
        assert main(args) == 3
        err = capsys.readouterr().err
        assert f"dmt preprocess into {out}: refused" in err and f"pid {first.pid}" in err, err
        assert not out.exists()  # the refused run wrote nothing
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert main(args) == 0
    ids = read_shards(out, columns=["id"]).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == len(list((synth_small / "videos").glob("*.mp4")))


@pytest.mark.slow
def test_a_second_resume_of_a_live_run_is_refused(smoke_base, tmp_path):
    from pipeline.train import driver

    cfg = C.resolve_paths(smoke_base)
    run_path = tmp_path / "ray_results" / "smoke-live"
    run_path.mkdir(parents=True)
    (run_path / driver.RUN_INFO).write_text(json.dumps({
        "run_id": "0" * 32, "name": run_path.name, "storage": str(run_path.parent),
        "uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "config": C.to_dict(cfg)}))
    proc = _holder(run_path / driver.RUN_LOCK)
    try:
        with pytest.raises(FolderLockedError, match=f"training run folder {run_path}: refused"):
            driver.fit(cfg, resume=str(run_path), say=lambda *_: None)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_two_benchmarks_into_one_folder(tmp_path):
    from pipeline.bench import quality

    cfg = C.load(REPO / "jobs/configs/bench_quick.yaml", [f"data.root={tmp_path / 'data'}"])
    out = tmp_path / "bench"
    proc = _holder(out / quality.BENCH_LOCK)
    try:
        with pytest.raises(FolderLockedError, match=f"benchmark folder {out}: refused"):
            quality.run_quality(cfg, out, say=lambda *_: None)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (tmp_path / "data").exists()  # refused before any data was written
