"""No space left on the device: preprocessing into a real small file system (a tmpfs this test
mounts, as root; CI runs as root) stops with one message naming the folder and the bytes
needed, leaves nothing half-written where a reader would take it for complete, and a rerun
once there is space resumes and ends with the same shards as a run that never met a full
disk."""

from __future__ import annotations

import contextlib
import subprocess

import pyarrow.parquet as pq
import pytest

from pipeline.config import DataConfig
from pipeline.data import read_shards, run_preprocess, verify_shards
from pipeline.errors import DiskFullError

try:
    from tests.media import sine, write_clip
except ImportError:  # pytest run without the repo root on sys.path
    from media import sine, write_clip

DATA = DataConfig(rows_per_file=4)


@contextlib.contextmanager
def tmpfs(mount, size: str):
    """A tmpfs of ``size`` mounted at ``mount`` (made here), unmounted whatever happens."""
    mount.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 600 kB tmpfs: room for a few of the clips' shards, not all."""
    with tmpfs(tmp_path / "small", "600k") as mount:
        yield mount


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("disk") / "videos"
    for i in range(16):  # ~100 kB a row: 1.6 MB of shards
        write_clip(folder / f"c{i:02d}.mp4", seconds=3.0, audio=sine(300 + 40 * i, 3.0, 16000))
    return folder


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_full_disk_stops_with_the_need_and_a_rerun_with_space_finishes(
        videos, small_disk, tmp_path, engine, request):
    if engine == "ray":
        request.getfixturevalue("ray_session")
    out = small_disk / "shards"
    with pytest.raises(DiskFullError) as err:
        run_preprocess(videos, out, data=DATA, engine=engine)
    text = str(err.value)
    partial = small_disk / ".shards.partial"
    assert text.startswith(f"no space left on the device writing {partial}: ")
    need = int(text.split("need about ")[1].split(" bytes")[0].replace(",", ""))
    assert 300_000 < need < 2_000_000, text  # the clips left, at ~100 kB a row
    assert "rerun the same command: it resumes" in text
    # nothing half-written: no temp files, every shard kept is whole, no finished folder
    assert not list(partial.glob(".*.inprogress"))
    kept = sorted(partial.glob("part-*.parquet"))
    assert kept and all(pq.read_table(p).num_rows for p in kept)
    assert not out.exists()
    with pytest.raises(Exception, match="no shards folder"):
        verify_shards(out)

    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    summary = run_preprocess(videos, out, data=DATA, engine=engine)
    assert summary["rows"] == 16 and summary["quarantined"] == 0
    assert summary["resumed"]["already_done"] == 4 * len(kept)  # resumed, not redone
    reference = tmp_path / "reference"
    run_preprocess(videos, reference, data=DATA, engine="local")
    assert _rows(read_shards(out)) == _rows(read_shards(reference))


def _rows(table) -> list[dict]:
    """Every column of every row, in id order (paths differ only by the folder)."""
    return sorted(table.to_pylist(), key=lambda r: r["id"])


@pytest.mark.slow
@pytest.mark.long
def test_a_checkpoint_that_meets_a_full_disk_stops_the_run_and_resume_finishes_it(
        smoke_base, untrained_checkpoint, small_disk, tmp_path):
    """train.storage on a tmpfs with room for one checkpoint but not two (Ray keeps two): the
    second report meets the full device; the run stops with the path, the bytes and the resume
    command; once there is room, `dmt train --resume` finishes the run."""
    import re
    import sys

    from pipeline import config as C
    from pipeline.engine import checkpoint as ckpt_io

    size = (untrained_checkpoint / ckpt_io.FILENAME).stat().st_size
    subprocess.run(["mount", "-o", f"remount,size={int(size * 1.6) // 1024}k",
                    str(small_disk)], check=True)
    cfg = C.from_dict(C.to_dict(smoke_base))
    cfg.train.storage, cfg.train.max_failures = str(small_disk / "runs"), 0
    cfg.train.stage2_epochs = 2
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(C.dump_yaml(cfg))
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--config",
                           str(cfg_file)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode != 0
    line = next(x for x in done.stderr.splitlines() if "no space left on the device" in x)
    taken = int(re.search(r"a checkpoint takes ([0-9,]+) bytes", line).group(1).replace(",", ""))
    assert 0.5 * size < taken < 2 * size, (taken, size)
    run = next((small_disk / "runs").iterdir())
    assert f"its last whole checkpoint is {run}/checkpoint_" in line, line
    assert f"`dmt train --resume {run}` continues the run" in line, line
    kept = [p for p in run.glob("checkpoint_*") if p.is_dir()]
    assert kept  # the first checkpoint; the one Ray could not finish copying is gone
    for folder in kept:
        ckpt_io.load(folder)  # every kept checkpoint is whole

    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    resumed = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--resume",
                              str(run)], cwd=tmp_path, capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    latest = ckpt_io.load(sorted(p for p in run.glob("checkpoint_*") if p.is_dir())[-1])
    assert latest["epoch"] + 1 == cfg.train.stage1_epochs + cfg.train.stage2_epochs


@pytest.mark.slow
@pytest.mark.long
def test_an_mlflow_artifact_store_that_is_full_stops_the_run_and_resume_logs_the_model(
        smoke_base, tmp_path):
    """The MLflow artifact store (``mlartifacts`` beside the SQLite store) on a 200 kB tmpfs:
    the finished run's checkpoint artifact meets the full device; the command names it and the
    bytes; once there is room, `dmt train --resume` logs the model and the run is FINISHED."""
    import re
    import sys

    from pipeline import config as C
    from pipeline import tracking

    store = tmp_path / "mlflow"
    with tmpfs(store / "mlartifacts", "200k"):
        cfg = C.from_dict(C.to_dict(smoke_base))
        cfg.train.storage, cfg.train.stage2_epochs = str(tmp_path / "runs"), 1
        cfg.tracking.uri, cfg.tracking.heatmaps = f"sqlite:///{store / 'mlflow.db'}", 0
        cfg_file = tmp_path / "cfg.yaml"
        cfg_file.write_text(C.dump_yaml(cfg))
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--config",
                               str(cfg_file)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode != 0
        line = next(x for x in done.stderr.splitlines() if "no space left on the device" in x)
        assert re.search(rf"writing {store / 'mlartifacts'}\S*: a checkpoint takes [0-9,]+ "
                         r"bytes, [0-9,]+ bytes free there; training finished but its model "
                         r"was not logged", line), line
        assert line.endswith("continues the run and logs the model"), line
        run = next((tmp_path / "runs").iterdir())
        subprocess.run(["mount", "-o", "remount,size=200m", str(store / "mlartifacts")],
                       check=True)
        resumed = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--resume",
                                  str(run)], cwd=tmp_path, capture_output=True, text=True,
                                 timeout=900)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        runs = tracking.search_runs(cfg.tracking.uri, cfg.name)
        assert [r.info.status for r in runs] == ["FINISHED"]
        assert tracking.run_model_id(cfg.tracking.uri, runs[0].info.run_id)
