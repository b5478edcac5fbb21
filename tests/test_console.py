"""What a user reads: a training run's console is a line per phase, one line per epoch (once),
the final table and the links; Ray's, Ray Data's and MLflow's own logs stay in Ray's log files.
A failure in a training worker still reaches the console in full."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import config as C

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _train(cfg, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(C.dump_yaml(cfg))
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "DMT_VERBOSE", "MLFLOW_LOGGING_LEVEL")}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--config",
                           str(cfg_file), *extra], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)


def _with(cfg, tmp_path: Path, *overrides: str):
    out = C.from_dict(C.to_dict(cfg))
    for text in (f"train.storage={tmp_path / 'ray_results'}",
                 f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", *overrides):
        C.set_key(out, *C.parse_override(text))
    return out


def test_a_training_run_prints_a_line_per_epoch_and_no_library_logs(smoke_base, tmp_path):
    cfg = _with(smoke_base, tmp_path)
    out = _train(cfg, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = (out.stdout + out.stderr).splitlines()
    epochs = cfg.train.stage1_epochs + cfg.train.stage2_epochs
    for epoch in range(1, epochs + 1):
        assert sum(line.startswith(f"[epoch {epoch}/{epochs}]") for line in lines) == 1, lines
    assert len(lines) < 30, "\n".join(lines)
    text = "\n".join(lines)
    for noise in ("INFO", "Execution plan", "RayTrainWorker", "TrainController",
                  "exclude_resources", "not writable", "Progress bars disabled",
                  "Creating initial MLflow database", "Checkpoint successfully created"):
        assert noise not in text, (noise, text)
    assert "?workflowType=machine_learning" in text  # the run's link opens its training view
    assert "Ray logs:" in text


def _damage_one_unlabeled_frame(shards: Path) -> str:
    """One unlabeled row's JPEG replaced by bytes that are not an image; footers, schema and
    counts stay valid (the driver's checks pass): the worker meets it while decoding."""
    for part in sorted(shards.glob("part-*.parquet")):
        table = pq.read_table(part)
        splits = table.column("split").to_pylist()
        if "unlabeled" not in splits:
            continue
        frames = table.column("frame_jpeg").to_pylist()
        frames[splits.index("unlabeled")] = b"not a jpeg"
        damaged = table.column("id")[splits.index("unlabeled")].as_py()
        col = table.schema.get_field_index("frame_jpeg")
        table = table.set_column(col, table.schema.field(col), pa.array(frames, pa.binary()))
        pq.write_table(table.replace_schema_metadata(pq.read_schema(part).metadata), part)
        return damaged
    raise AssertionError(f"{shards}: no unlabeled row")


def test_a_worker_error_reaches_the_console_in_full(smoke_base, tmp_path):
    shards = tmp_path / "shards"
    shutil.copytree(C.data_paths(smoke_base.data).shards, shards)
    damaged = _damage_one_unlabeled_frame(shards)
    cfg = _with(smoke_base, tmp_path, f"data.shards={shards}", "train.max_failures=0")
    out = _train(cfg, tmp_path)
    assert out.returncode != 0
    # the traceback of the worker's error, from the decode call that failed
    assert "Traceback" in out.stderr and "decode_jpeg" in out.stderr, out.stderr[-3000:]
    assert "is not a readable JPEG" in out.stderr and "UnidentifiedImageError" in out.stderr
    assert f"clip {damaged!r}" in out.stderr  # the input named
    assert "[epoch 1/" in out.stdout  # stage 1 (labeled clips only) ran before it
