"""Resources fitted to the cluster: auto CPUs per worker, and runs that cannot hold their
workers beside Ray Data's stage-2 stream refused before any work (they used to hang)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import config as C
from pipeline.train import resources

REPO = Path(__file__).resolve().parents[1]


def _cfg(*overrides: str) -> C.Config:
    return C.load(REPO / "jobs/configs/demo.yaml", list(overrides))


@pytest.mark.parametrize(("workers", "cluster", "sweep", "expected"), [
    (1, 2, False, 1.0),   # the demo on this machine: as before
    (2, 2, False, 0.5),   # README's two-worker example: one CPU left for Ray Data
    (3, 2, False, 0.3),   # 1/3 rounded down to 0.05
    (1, 2, True, 0.5),    # a sweep's trial: its driver function holds tune.trial_cpus=0.5
    (2, 16, False, 1.0),  # never more than one CPU by default
])
def test_auto_cpus_per_worker_fit_the_cluster(workers, cluster, sweep, expected):
    cfg = resources.fitted(_cfg(f"train.num_workers={workers}"), cluster, sweep=sweep)
    assert cfg.train.cpus_per_worker == pytest.approx(expected)
    trial = cfg.tune.trial_cpus if sweep else 0.0
    assert resources.run_cpus(cfg, cfg.train.cpus_per_worker, trial) <= cluster + 1e-9


def test_a_set_value_that_cannot_hold_ray_data_is_refused_with_one_that_fits():
    cfg = _cfg("train.num_workers=2", "train.cpus_per_worker=1")
    with pytest.raises(C.ConfigError, match=r"one run needs 3 CPUs .* the cluster has 2; "
                                            r"--set train\.cpus_per_worker=0\.5"):
        resources.fitted(cfg, 2)
    assert resources.fitted(cfg, 3).train.cpus_per_worker == 1.0  # kept where it fits


def test_more_workers_than_the_cluster_holds_are_refused():
    with pytest.raises(C.ConfigError, match="holds no Train worker beside Ray Data"):
        resources.fitted(_cfg("train.num_workers=30"), 2)
    # in-process training needs no worker CPUs
    assert resources.fitted(_cfg("train.num_workers=0"), 1).train.num_workers == 0


@pytest.mark.slow
def test_train_refuses_before_any_mlflow_run(smoke_base, tmp_path, capsys):
    from pipeline.cli import main

    db = tmp_path / "mlflow.db"
    code = main(["train", "--config", str(REPO / "jobs/configs/smoke.yaml"),
                 "--set", f"data.root={smoke_base.data.root}",
                 "--set", f"train.storage={tmp_path / 'ray_results'}",
                 "--set", f"tracking.uri=sqlite:///{db}",
                 "--set", "train.num_workers=2", "--set", "train.cpus_per_worker=1"])
    err = capsys.readouterr().err
    assert code == 2 and "config error: train.num_workers / train.cpus_per_worker" in err, err
    assert not db.exists() and not (tmp_path / "ray_results").exists()


def test_capacity_wait_bounds_ray_trains_worker_group_restarts(monkeypatch):
    from pipeline.train.driver import capacity_retries

    monkeypatch.delenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", raising=False)
    assert capacity_retries(_cfg("train.capacity_wait_s=600")) == 10  # 60 s per start attempt
    assert capacity_retries(_cfg("train.capacity_wait_s=90")) == 2
    monkeypatch.setenv("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "30")
    assert capacity_retries(_cfg("train.capacity_wait_s=600")) == 20
