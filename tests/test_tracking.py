"""The MLflow shell: URI resolution (workers change directory), runs, params, tags, artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import tracking


def test_uri_defaults_to_absolute_sqlite_in_start_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.resolve_tracking_uri("", cwd=tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"


def test_uri_from_environment_and_relative_sqlite_made_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///runs/m.db")
    assert tracking.resolve_tracking_uri("", cwd=tmp_path) == f"sqlite:///{tmp_path}/runs/m.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.resolve_tracking_uri("", cwd=tmp_path) == "http://127.0.0.1:5000"
    # the config wins over the environment
    assert tracking.resolve_tracking_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"


def test_local_artifacts_live_beside_the_database(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert tracking.local_artifact_root(uri) == (tmp_path / "mlartifacts").as_uri()
    assert tracking.local_artifact_root("http://127.0.0.1:5000") is None


@pytest.fixture()
def store(tmp_path):
    return f"sqlite:///{tmp_path}/mlflow.db"


def test_run_gets_params_tags_metrics_and_artifacts(store, tmp_path, monkeypatch):
    params = {f"p{i}": i for i in range(150)}  # more than one MLflow batch of params
    tags = tracking.reproducibility_tags({"dataset": {"rows": 3}})
    run_id = tracking.start_run(store, "exp", "r1", params, tags)
    log = tracking.RunLogger(store, run_id)
    log.log_metrics({"loss": 1.0, "nan_is_skipped": float("nan")}, step=0)
    log.log_metrics({"loss": 0.5}, step=1)
    log.log_png(b"\x89PNG fake", "heatmaps/epoch_001.png")
    log.end("FINISHED")

    monkeypatch.chdir(tmp_path.parent)  # artifacts must not depend on the reader's directory
    run = tracking.get_run(store, run_id)
    assert run.data.params["p149"] == "149" and len(run.data.params) == 150
    from importlib import metadata

    assert run.data.tags["git_commit"]  # what this environment runs, read at run time
    assert run.data.tags["version.torch"] == metadata.version("torch")
    assert run.data.tags["version.mlflow"] == metadata.version("mlflow")
    assert run.data.tags["dataset"] == '{"rows": 3}'
    assert tracking.metric_history(store, run_id, "loss") == [(0, 1.0), (1, 0.5)]
    assert "nan_is_skipped" not in run.data.metrics
    assert tracking.list_artifacts(store, run_id, "heatmaps") == ["heatmaps/epoch_001.png"]
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())


def test_child_runs_point_at_their_parent(store):
    parent = tracking.start_run(store, "sweep", "parent", {})
    child = tracking.start_run(store, "sweep", "trial_0", {"dmt.tau": 0.3}, parent_run_id=parent)
    assert tracking.get_run(store, child).data.tags[tracking.PARENT_TAG] == parent
    found = tracking.search_runs(store, "sweep", f"tags.`{tracking.PARENT_TAG}` = '{parent}'")
    assert [r.info.run_id for r in found] == [child]


def test_logger_pickles_without_its_client(store):
    import pickle

    log = tracking.RunLogger(store, tracking.start_run(store, "e", "r", {}))
    _ = log.client
    again = pickle.loads(pickle.dumps(log))
    assert again.run_id == log.run_id and again._client is None
    again.log_metrics({"x": 2.0}, step=3)
    assert tracking.metric_history(store, log.run_id, "x") == [(3, 2.0)]


def test_git_commit_is_recorded():
    commit = tracking.git_commit(Path(__file__).resolve().parents[1])
    assert len(commit.split("-")[0]) == 40


def test_the_source_shown_by_mlflow_keeps_the_command_without_folders():
    from pipeline.tracking.runs import source_name

    command = ("dmt train --config /w/jobs/configs/demo.yaml --set data.root=/w/data "
               "--set tracking.uri=sqlite:////w/mlflow.db --register dmt --set optim.lr=0.01")
    short = source_name(command)
    assert "/" not in short  # the UI shows what follows the last slash
    assert short == ("dmt train --config demo.yaml --set data.root=data --set "
                     "tracking.uri=mlflow.db --register dmt --set optim.lr=0.01")
