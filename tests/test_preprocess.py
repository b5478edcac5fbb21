"""Preprocessing through Ray Data and the local engine: the same rows as decoding clip by clip,
quarantine, missing ids, the summary, a re-run, the shard reader, the CLI.

Clip by clip, no Ray: tests/test_preprocess_decode.py. Interruption and resume:
tests/test_preprocess_resume.py. The awkward clips (the session fixtures ``clips``,
``direct_rows``): tests/conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import tracking
from pipeline.config import DataConfig
from pipeline.data import (
    SCHEMA_VERSION,
    SchemaVersionError,
    load_quarantine,
    load_summary,
    read_shards,
    row_to_example,
    run_preprocess,
    shard_files,
)
from pipeline.data import schema as schema_mod

try:
    from tests.preprocess_helpers import EXPECTED, SMALL, _plan_args, _sorted_rows
except ImportError:  # pytest run without the repo root on sys.path
    from preprocess_helpers import EXPECTED, SMALL, _plan_args, _sorted_rows


@pytest.fixture(scope="module")
def ray_out(ray_session, clips, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ray") / "shards"
    summary = run_preprocess(clips / "videos", out, data=SMALL, engine="ray",
                             **_plan_args(clips))
    return out, summary


# ---------------------------------------------------------------- through Ray Data


def test_ray_rows_equal_direct_rows(ray_out, direct_rows):
    out, summary = ray_out
    shards = read_shards(out)
    assert shards.schema.names == schema_mod.COLUMNS
    good = [{k: v for k, v in r.items() if k != "error"} for r in direct_rows.values()
            if r["error"] is None]
    good = pa.Table.from_pylist(good, schema=schema_mod.SCHEMA)  # float32 columns as stored
    assert _sorted_rows(shards) == _sorted_rows(good)  # every column, bytes included
    quarantine = {r["id"]: r["reason"] for r in load_quarantine(out)}
    assert quarantine == {k: r["error"] for k, r in direct_rows.items() if r["error"]}
    assert all(set(r) == {"id", "path", "split", "reason"} for r in load_quarantine(out))


def test_local_engine_writes_the_same_rows(ray_out, clips, tmp_path):
    out_ray, _ = ray_out
    summary = run_preprocess(clips / "videos", tmp_path / "s", data=SMALL, engine="local",
                             **_plan_args(clips))
    assert _sorted_rows(read_shards(tmp_path / "s")) == _sorted_rows(read_shards(out_ray))
    assert load_quarantine(tmp_path / "s") == load_quarantine(out_ray)
    assert summary["fingerprint"] == load_summary(out_ray)["fingerprint"]


def test_clip_groups_are_bounded_whole_rounds_covering_every_clip():
    from pipeline.data.engines import clip_groups

    assert clip_groups(0, 2, 1000) == []
    assert clip_groups(2500, 2, 1000) == [(0, 625), (625, 1250), (1250, 1875), (1875, 2500)]
    assert clip_groups(1000, 2, 1000) == [(0, 500), (500, 1000)]
    assert clip_groups(1000, 1, 1000) == [(0, 1000)]
    assert clip_groups(3, 8, 4) == [(0, 1), (1, 2), (2, 3)]  # never an empty group
    for n, tasks, rows in ((10, 2, 4), (1001, 2, 1000), (7, 3, 2), (10_000, 2, 1000)):
        groups = clip_groups(n, tasks, rows)
        assert groups[0][0] == 0 and groups[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(groups, groups[1:], strict=False))
        sizes = [b - a for a, b in groups]
        assert max(sizes) <= rows and max(sizes) - min(sizes) <= 1
        assert len(groups) % tasks == 0 or len(groups) == n


def test_summary_accounts_for_every_input(ray_out):
    out, summary = ray_out
    assert summary == {**load_summary(out), "up_to_date": False}
    n_bad = sum(1 for v in EXPECTED.values() if v)
    assert summary["inputs"] == len(EXPECTED)  # notes.txt is not a video
    assert summary["rows"] == len(EXPECTED) - n_bad and summary["quarantined"] == n_bad
    assert summary["inputs"] == summary["rows"] + summary["quarantined"]
    assert summary["missing"] == ["ghost_annotated", "ghost_labeled", "ghost_test"]
    assert summary["missing_by_split"] == {"annotations_only": 1, "labeled": 1, "test": 1}
    assert summary["splits"]["labeled"] == {"inputs": 2, "rows": 2, "quarantined": 0}
    # no_audio is in the test list without a box: out of the test split before decoding
    assert summary["splits"]["test"] == {"inputs": 2, "rows": 2, "quarantined": 0}
    assert summary["without_box"] == {"test": {"count": 1, "ids": ["no_audio"],
                                               "treated_as": "exclude"}}
    assert summary["schema_version"] == SCHEMA_VERSION
    assert summary["quarantine_reasons"]["unreadable container"] == 2
    assert summary["annotations"]["clipped_coordinates"] == 2
    assert summary["annotations"]["bad_entries"] == 1
    assert sum(s["rows"] for s in summary["shards"]) == summary["rows"]
    # bounded shards: never more than rows_per_file rows
    assert all(s["rows"] <= SMALL.rows_per_file for s in summary["shards"])
    assert summary["data_config"]["rows_per_file"] == 4 and summary["engine"] == "ray"
    assert summary["timings"]["decode_write_s"] > 0
    for f in shard_files(out):
        assert pq.read_schema(f).metadata[b"dmt.schema_version"] == str(SCHEMA_VERSION).encode()


def test_rerun_is_up_to_date_and_changes_nothing(ray_out, clips):
    out, summary = ray_out
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run_preprocess(clips / "videos", out, data=SMALL, engine="ray", **_plan_args(clips))
    assert again["up_to_date"] and again["fingerprint"] == summary["fingerprint"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_reader_helpers(ray_out):
    out, _ = ray_out
    test_rows = read_shards(out, columns=["id", "has_boxes"], split="test")
    assert sorted(test_rows["id"].to_pylist()) == ["mkv_clip", "portrait"]
    assert test_rows.schema.names == ["id", "has_boxes"]
    row = read_shards(out, split="labeled").to_pylist()[0]
    ex = row_to_example(row)
    assert ex["frame"].dtype == np.uint8 and ex["frame"].shape == (224, 299, 3)
    assert ex["waveform"].dtype == np.float32 and ex["boxes"].dtype == np.float32
    assert ex["boxes"].shape[1] == 4 and ex["split"] == "labeled"
    # the same helper reads rows that come through Ray Data
    from ray.data.expressions import col

    from pipeline.train.data import ray_dataset

    ray_row = ray_dataset(out).filter(expr=col("id") == row["id"]).take(1)[0]
    ray_ex = row_to_example(ray_row)
    assert np.array_equal(ray_ex["frame"], ex["frame"])
    assert np.array_equal(ray_ex["waveform"], ex["waveform"])
    assert np.array_equal(ray_ex["boxes"], ex["boxes"]) and ray_ex["id"] == ex["id"]


def test_reader_refuses_other_schema_versions(tmp_path):
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "part-x.parquet")
    with pytest.raises(SchemaVersionError, match="not written by"):
        shard_files(tmp_path)
    meta = dict(schema_mod.METADATA)
    meta[schema_mod.VERSION_KEY] = b"999"
    table = schema_mod.SCHEMA.empty_table().replace_schema_metadata(meta)
    pq.write_table(table, tmp_path / "part-x.parquet")
    with pytest.raises(SchemaVersionError, match="re-run `dmt preprocess`"):
        shard_files(tmp_path)


# ---------------------------------------------------------------- CLI

def test_cli_flags_override_the_config(clips, tmp_path, capsys):
    from pipeline.cli import main

    out = tmp_path / "cli_shards"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["preprocess", "--videos", str(clips / "videos"), "--out", str(out),
            "--annotations", str(clips / "annotations.json"), "--lists",
            str(clips / "lists"), "--format", "vggss", "--engine", "local",
            "--set", "data.rows_per_file=50", "--set", "data.frame_short_side=112",
            "--tracking-uri", uri]
    rc = main([*args, "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    _check_preprocessing_run(uri, out, clips)
    assert main(args) == 0  # a rerun finds the shards up to date, and their run
    assert len(tracking.search_runs(uri, "preprocess")) == 1
    assert summary["rows"] == sum(1 for v in EXPECTED.values() if v is None)
    assert summary["config"]["data"]["format"] == "vggss"
    assert summary["config"]["data"]["shards"] == str(out)
    assert summary["decode_options"]["frame_short_side"] == 112 and len(summary["shards"]) == 1
    assert main(["preprocess", "--videos", str(clips / "videos"), "--out", str(out),
                 "--annotations", str(tmp_path / "nope.json"), "--engine", "local"]) == 2
    assert main(["preprocess", "--videos", str(clips / "videos"), "--out", str(out),
                 "--set", "data.rows_per_file=0"]) == 2


def _check_preprocessing_run(uri: str, out, clips) -> None:
    """The preprocessing as an MLflow run: decode options and inputs as params, counts as
    metrics, the raw inputs as a dataset, summary.json and quarantine.jsonl as artifacts."""
    (run,) = tracking.search_runs(uri, "preprocess")
    summary = load_summary(out)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dmt.preprocess_logged_by"] == "dmt preprocess"
    assert run.data.params["decode.frame_short_side"] == "112"
    assert run.data.params["input.source"] == summary["inputs_source"]
    assert run.data.params["input.annotations"] == summary["annotations"]["source"]
    assert summary["annotations"]["source"].endswith("annotations.json")
    assert run.data.metrics["rows"] == summary["rows"]
    assert run.data.metrics["quarantined"] == summary["quarantined"] > 0
    reasons = {k.split("/", 1)[1]: v for k, v in run.data.metrics.items()
               if k.startswith("quarantine/")}
    assert reasons == summary["quarantine_reasons"] and sum(reasons.values()) == \
        summary["quarantined"]
    (raw,) = run.inputs.dataset_inputs
    assert json.loads(raw.dataset.source)["uri"] == summary["inputs_source"]
    files = tracking.download_artifacts(uri, f"runs:/{run.info.run_id}/preprocess")
    assert json.loads(Path(files, "summary.json").read_text()) == summary
    lines = Path(files, "quarantine.jsonl").read_text().splitlines()
    assert len(lines) == summary["quarantined"]


# ---------------------------------------------------------------- the synthetic benchmark

def test_synthetic_benchmark(ray_session, tmp_path, request):
    synth = request.getfixturevalue("synth_small")
    summary = run_preprocess(synth / "videos", tmp_path / "s", annotations=synth /
                             "annotations.json", fmt="synth", lists=synth,
                             data=DataConfig(rows_per_file=8), engine="ray")
    assert (summary["inputs"], summary["rows"], summary["quarantined"]) == (24, 24, 0)
    assert summary["missing"] == []
    assert {k: v["rows"] for k, v in summary["splits"].items()} == {
        "labeled": 6, "test": 6, "unlabeled": 12}
    table = read_shards(tmp_path / "s")
    for row in table.to_pylist():
        assert row["frame_index"] == row["num_frames"] // 2
        assert row["has_boxes"] and row["box_format"] == "vggss"
