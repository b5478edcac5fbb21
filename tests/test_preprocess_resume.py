"""Preprocessing runs cut short or repeated: kill -9 and resume, changed options, force, a run
finished but not swapped in, and an output folder it did not write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import DataConfig
from pipeline.data import PreprocessError, load_quarantine, read_shards, run_preprocess

try:
    from tests.media import sine, write_clip, write_text
    from tests.preprocess_helpers import _sorted_rows
except ImportError:  # pytest run without the repo root on sys.path
    from media import sine, write_clip, write_text
    from preprocess_helpers import _sorted_rows


# ---------------------------------------------------------------- interruption and resume

def _many_clips(root: Path, n: int) -> Path:
    """``n`` clips under distinct ids (a manifest reusing three files), two of them broken."""
    root.mkdir(parents=True, exist_ok=True)
    a = write_clip(root / "a.mp4", seconds=2.0, audio=sine(440, 2.0, 16000))
    b = write_clip(root / "b.mkv", seconds=2.0, width=96, height=160, audio=sine(880, 2, 16000))
    write_text(root / "bad.mp4")
    lines = ["id,path"] + [f"clip{i:03d},{[a, b][i % 2].name}" for i in range(n)]
    lines += ["broken1,bad.mp4", "broken2,bad.mp4"]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def test_interrupted_run_resumes_to_the_same_shards(ray_session, tmp_path):
    manifest = _many_clips(tmp_path / "media", 60)
    args = ["--videos", str(manifest), "--set", "data.rows_per_file=3",
            "--set", "data.decode_batch_size=1", "--no-log"]
    clean = tmp_path / "clean"
    assert run_preprocess(manifest, clean, data=DataConfig(rows_per_file=3, decode_batch_size=1),
                          engine="local")["rows"] == 60

    # 1. a real interruption: kill -9 a run while it is writing shards
    out = tmp_path / "out"
    partial = tmp_path / ".out.partial"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "preprocess", *args,
                             "--out", str(out), "--engine", "local"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(partial.glob("part-*.parquet"))) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = list(partial.glob("part-*.parquet"))
    assert 3 <= len(written) and not out.exists(), "the run should have been cut mid-way"

    # 2. plus the debris of a write cut in the middle of a file
    (partial / ".part-0000.abcd.inprogress").write_bytes(b"PAR1 half a file")
    (partial / "part-deadbeefdeadbeef.parquet").write_bytes(b"PAR1 not really parquet")
    (partial / "quarantine-deadbeefdeadbeef.jsonl").write_text('{"id": "x", "pa')

    # 3. rerun (through Ray this time): finishes the rest, nothing twice, nothing lost
    summary = run_preprocess(manifest, out, data=DataConfig(rows_per_file=3, decode_batch_size=1),
                             engine="ray")
    assert 0 < summary["resumed"]["already_done"] < 62
    assert summary["resumed"]["decoded_now"] == 62 - summary["resumed"]["already_done"]
    assert len(summary["resumed"]["repairs"]) == 3
    assert (summary["inputs"], summary["rows"], summary["quarantined"]) == (62, 60, 2)
    assert not partial.exists()
    assert _sorted_rows(read_shards(out)) == _sorted_rows(read_shards(clean))
    assert load_quarantine(out) == load_quarantine(clean)
    ids = read_shards(out, columns=["id"])["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 60


def test_changed_options_start_over_and_force_redoes(tmp_path):
    manifest = _many_clips(tmp_path / "media", 4)
    out = tmp_path / "out"
    first = run_preprocess(manifest, out, data=DataConfig(rows_per_file=2), engine="local")
    other = run_preprocess(manifest, out, data=DataConfig(rows_per_file=2, frame_short_side=64),
                           engine="local")
    assert other["fingerprint"] != first["fingerprint"] and not other["up_to_date"]
    sizes = read_shards(out, columns=["frame_height", "frame_width"]).to_pylist()
    assert {min(r["frame_height"], r["frame_width"]) for r in sizes} == {64}
    forced = run_preprocess(manifest, out, data=DataConfig(rows_per_file=2, frame_short_side=64),
                            engine="local", force=True)
    assert not forced["up_to_date"] and forced["rows"] == 4


def test_finished_but_not_swapped_in_is_completed(tmp_path):
    manifest = _many_clips(tmp_path / "media", 3)
    out = tmp_path / "out"
    first = run_preprocess(manifest, out, engine="local")
    os.rename(out, tmp_path / ".out.partial")  # as if cut between the final renames
    again = run_preprocess(manifest, out, engine="local")
    assert again["up_to_date"] and again["fingerprint"] == first["fingerprint"]
    assert not (tmp_path / ".out.partial").exists() and len(read_shards(out)) == 3


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    manifest = _many_clips(tmp_path / "media", 2)
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(PreprocessError, match="not a shards folder"):
        run_preprocess(manifest, out, engine="local")
    assert (out / "thesis.tex").read_text() == "do not delete"
