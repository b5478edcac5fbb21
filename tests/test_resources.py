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


# --------------------------------------------------------------- CPUs per node, not in total

def _nodes(*cpus: float) -> list:
    from pipeline.train.placement import Node

    return [Node(f"10.0.0.{i + 1}", c) for i, c in enumerate(cpus)]


def test_cpus_that_fit_in_total_but_not_per_node_are_refused_with_a_setting_that_fits():
    """Two 1-CPU nodes hold two 0.5-CPU workers in total, but SPREAD leaves half a CPU on each
    and Ray Data's stage-2 stream waits forever (17 minutes seen): refused before any work."""
    cfg = _cfg("train.num_workers=2", "train.placement_strategy=SPREAD")
    assert resources.fitted(cfg, 2).train.cpus_per_worker == 0.5  # totals alone: "fits"
    with pytest.raises(C.ConfigError) as err:
        resources.fitted(cfg, 2, nodes=_nodes(1, 1))
    text = str(err.value)
    assert "2 worker(s) x 0.5 CPU placed SPREAD on 2 node(s) (10.0.0.1 1 CPU, 10.0.0.2 1 CPU)" \
           ": leaves 0.5, 0.5 CPU free" in text
    assert "needs 1 CPU free on one node" in text
    assert "--set train.placement_strategy=PACK (it leaves 0, 1 CPU free" in text
    # the setting it names fits: both workers on one node, the other free for Ray Data
    packed = resources.fitted(_cfg("train.num_workers=2"), 2, nodes=_nodes(1, 1))
    assert packed.train.placement_strategy == "PACK" and packed.train.cpus_per_worker == 0.5


@pytest.mark.parametrize(("overrides", "nodes", "expected"), [
    # auto shrinks the share until one node keeps a CPU for Ray Data: 1.0 -> 0.5
    (("train.num_workers=2", "train.placement_strategy=SPREAD"), (1.5, 1.5), 0.5),
    # a set value that leaves a node free is kept
    (("train.num_workers=2", "train.placement_strategy=SPREAD",
      "train.cpus_per_worker=1"), (2, 2), 1.0),
    # one node: the per-node check is the total check
    (("train.num_workers=2",), (2,), 0.5),
])
def test_per_node_fits(overrides, nodes, expected):
    cfg = resources.fitted(_cfg(*overrides), sum(nodes), nodes=_nodes(*nodes))
    assert cfg.train.cpus_per_worker == pytest.approx(expected)


def test_workers_that_cannot_each_have_a_node_are_refused_with_a_strategy_that_fits():
    cfg = _cfg("train.num_workers=3", "train.placement_strategy=STRICT_SPREAD",
               "train.cpus_per_worker=0.5")
    with pytest.raises(C.ConfigError, match=r"\(10.0.0.1 2 CPU, 10.0.0.2 2 CPU\): the workers "
                                            r"do not fit there; .*--set "
                                            r"train.placement_strategy=PACK"):
        resources.fitted(cfg, 4, nodes=_nodes(2, 2))


def test_when_no_strategy_fits_fewer_workers_are_named():
    cfg = _cfg("train.num_workers=2", "train.placement_strategy=SPREAD",
               "train.cpus_per_worker=1")
    with pytest.raises(C.ConfigError, match=r"leaves 0.5, 0.5 CPU free; .*--set "
                                            r"train.num_workers=1 \(or nodes with more CPUs\)"):
        resources.fitted(cfg, 3, nodes=_nodes(1.5, 1.5))


def test_the_data_stream_needs_its_cpu_on_a_node_it_may_use():
    """data.nodes restricts Ray Data to labeled nodes: a free CPU elsewhere does not help."""
    from pipeline.train.placement import Node

    nodes = [Node("cpu-node", 1, {"dmt-role": "data"}), Node("gpu-node", 2, {"dmt-role": "gpu"})]
    ok = _cfg("train.num_workers=1", "train.worker_nodes=dmt-role=gpu",
              "data.nodes=dmt-role=data")
    assert resources.fitted(ok, 3, nodes=nodes).train.cpus_per_worker == 1.0
    squeezed = _cfg("train.num_workers=2", "train.cpus_per_worker=0.5",
                    "data.nodes=dmt-role=data")  # PACK puts them on the 2-CPU node first
    assert resources.fitted(squeezed, 3, nodes=nodes).train.cpus_per_worker == 0.5
    crowded = _cfg("train.num_workers=1", "train.cpus_per_worker=0.5",
                   "train.worker_nodes=dmt-role=data", "data.nodes=dmt-role=data")
    with pytest.raises(C.ConfigError, match="needs 1 CPU free on one node of the data.nodes"):
        resources.fitted(crowded, 3, nodes=nodes)
