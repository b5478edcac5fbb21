"""Corrupt or foreign shards: `dmt train`, `dmt evaluate` and `dmt tune` stop before any training
with one line naming the file and what is wrong (exit 2), not a stack trace from a worker."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline import config as C
from pipeline.cli import main
from pipeline.data import schema as schema_mod
from pipeline.data.verify import ShardsError, verify_shards

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "jobs/configs/smoke.yaml")
pytestmark = pytest.mark.slow  # needs the session's smoke shards (Ray preprocessing)


@pytest.fixture()
def data_copy(smoke_base, tmp_path) -> Path:
    """A private copy of the smoke data folder (videos and shards) to break."""
    src = C.data_paths(smoke_base.data).root
    dst = tmp_path / "data"
    shutil.copytree(src, dst)
    return dst


def _parts(data: Path) -> list[Path]:
    return sorted((data / "shards").glob("part-*.parquet"))


def _cli(command: str, data: Path, tmp_path: Path, capsys, *extra: str) -> tuple[int, str]:
    args = [command, "--config", SMOKE, "--set", f"data.root={data}",
            "--set", f"train.storage={tmp_path / 'ray_results'}",
            "--set", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", *extra]
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def _rewrite(path: Path, table) -> None:
    pq.write_table(table, path)


def test_a_truncated_shard_is_named_before_training(data_copy, tmp_path, capsys):
    part = _parts(data_copy)[1]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    code, err = _cli("train", data_copy, tmp_path, capsys)
    assert code == 2, err
    assert f"{part}: not a readable Parquet file, truncated or corrupt" in err
    assert "Traceback" not in err
    assert not (tmp_path / "ray_results").exists()  # no run was started


def test_a_shard_of_another_schema_version_is_named(data_copy, tmp_path, capsys):
    part = _parts(data_copy)[0]
    table = pq.read_table(part)
    meta = dict(table.schema.metadata)
    meta[schema_mod.VERSION_KEY] = b"2"
    _rewrite(part, table.replace_schema_metadata(meta))
    for command, extra in (("train", ()), ("tune", ("--samples", "1"))):
        code, err = _cli(command, data_copy, tmp_path, capsys, *extra)
        assert code == 2, err
        assert f"{part}: schema version 2, this code reads version " \
               f"{schema_mod.SCHEMA_VERSION}" in err, command
    assert not (tmp_path / "mlflow.db").exists()  # no run or sweep was started


def test_an_empty_split_is_refused_for_the_methods_that_read_it(data_copy, tmp_path, capsys):
    shards = data_copy / "shards"
    summary = json.loads((shards / "summary.json").read_text())
    for entry in summary["shards"]:  # drop every unlabeled row, keep summary.json consistent
        table = pq.read_table(shards / entry["file"])
        kept = table.filter(pc.not_equal(table["split"], "unlabeled"))
        _rewrite(shards / entry["file"], kept)
        entry["rows"] = kept.num_rows
    (shards / "summary.json").write_text(json.dumps(summary))
    code, err = _cli("train", data_copy, tmp_path, capsys)
    assert code == 2, err
    assert "split 'unlabeled' is empty" in err and str(shards) in err
    # a method without a stage 2 on unlabeled clips trains on the same folder
    assert verify_shards(shards, needs=("labeled", "test"))["rows"] == summary["rows"]


def test_a_shard_that_summary_json_does_not_list_is_foreign(data_copy, tmp_path, capsys):
    parts = _parts(data_copy)
    foreign = parts[0].with_name("part-zz-foreign.parquet")
    shutil.copy(parts[0], foreign)
    with pytest.raises(ShardsError, match="does not list"):
        verify_shards(data_copy / "shards")
    foreign.unlink()
    parts[-1].unlink()
    with pytest.raises(ShardsError, match=r"listed in summary.json are missing"):
        verify_shards(data_copy / "shards")


def test_evaluate_names_the_corrupt_shard(data_copy, tmp_path, capsys):
    from pipeline.dmt.state import make_state
    from pipeline.engine import checkpoint as ckpt_io

    cfg = C.load(SMOKE, [])
    state = make_state(cfg.model, cfg.dmt, cfg.optim, "cpu", seed=0,
                       sample_rate=cfg.data.sample_rate)
    ckpt = ckpt_io.save(tmp_path / "ckpt", state.state_dict(), epoch=0, config=C.to_dict(cfg))
    part = _parts(data_copy)[0]
    part.write_bytes(b"PAR1" + b"\0" * 64)
    code = main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data_copy / "shards")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{part}: not a readable Parquet file" in err
