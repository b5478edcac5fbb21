"""jobs/benchmarks/train_bench.py: both loops run on the smoke shards and --json holds their
figures (the speed itself is a benchmark, docs/performance.md, not a test)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from pipeline import config as C

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.long  # a benchmark's wiring; `make test-long` (the suite is near its 25 min)
def test_train_bench_writes_the_plain_and_ray_figures_as_json(smoke_base, tmp_path, monkeypatch):
    config = tmp_path / "smoke.yaml"
    config.write_text(C.dump_yaml(C.from_dict(C.to_dict(smoke_base), [
        f"train.storage={tmp_path / 'ray'}", "tracking.system_metrics=false"])))
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", ["train_bench.py", "--config", str(config), "--steps", "2",
                                      "--json", str(out)])
    runpy.run_path(str(REPO / "jobs/benchmarks/train_bench.py"), run_name="__main__")
    data = json.loads(out.read_text())
    for side in ("plain", "ray"):
        assert data[side]["samples_per_s"] > 0, data
        assert 0.0 <= data[side]["data_wait_frac"] <= 1.0, data
    assert data["ray_over_plain"] == pytest.approx(
        data["ray"]["samples_per_s"] / data["plain"]["samples_per_s"])
    assert data["steps"] == 2
