"""Object storage (issue 19 item 7): shards in a bucket of a real S3-compatible server (moto's
standalone server, started on 127.0.0.1 by the test): preprocessing into a bucket, training from
it with Ray Train's checkpoints and MLflow's artifacts in it, and --resume from it."""

from __future__ import annotations

import pytest

from pipeline.config import DataConfig
from pipeline.data import reader
from pipeline.data.preprocess import run_preprocess
from pipeline.data.verify import verify_shards

try:
    from tests.s3_server import moto_server
    from tests.test_faults_tracking import _in_thread, _wait_first_epoch
except ImportError:  # pytest run without the repo root on sys.path
    from s3_server import moto_server
    from test_faults_tracking import _in_thread, _wait_first_epoch


@pytest.fixture(scope="module")
def s3():
    with moto_server() as server:
        server.create_bucket("dmt")
        yield server


def test_preprocess_into_a_bucket_resume_and_read_back(s3, synth_small):
    out = s3.uri("dmt", "shards")
    kwargs = dict(annotations=synth_small / "annotations.json", lists=synth_small,
                  engine="local", data=DataConfig(rows_per_file=8))
    summary = run_preprocess(synth_small / "videos", out, **kwargs)
    keys = s3.keys("dmt")
    assert "shards/summary.json" in keys and not summary["up_to_date"]
    assert sum(k.startswith("shards/part-") for k in keys) == len(summary["shards"])
    assert not [k for k in keys if ".partial" in k]  # the partial folder was moved in
    assert run_preprocess(synth_small / "videos", out, **kwargs)["up_to_date"]
    assert verify_shards(out, ("labeled", "test"))["rows"] == summary["rows"]
    assert reader.is_shards_folder(out)
    assert sum(reader.split_counts(out).values()) == summary["rows"]
    assert len(reader.read_clips(out, reader.split_ids(out, "test")[:2])) == 2


def _with(cfg, *overrides):
    from pipeline import config as C

    return C.from_dict(C.to_dict(cfg), list(overrides))


@pytest.mark.slow
def test_train_from_a_bucket_with_checkpoints_and_mlflow_artifacts_in_it_then_resume(
        s3, smoke_base, tmp_path, monkeypatch):
    """Shards, Ray Train's storage and (through an ``mlflow server --artifacts-destination``)
    MLflow's artifacts all in the bucket. The server is stopped after the first epoch, so the run
    fails (as on a cluster whose tracking server went away); ``--resume`` of the run folder in
    the bucket continues from its checkpoint there and finishes the same MLflow run."""
    import re

    from pipeline import tracking
    from pipeline.checkpoint_uri import evaluate_checkpoint
    from pipeline.errors import TrackingUnavailableError
    from pipeline.prepare import prepare_dataset
    from pipeline.tracking.server import LocalServer
    from pipeline.train.driver import fit

    s3.create_bucket("run")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://{s3.endpoint}")  # the server's own
    db_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    server = LocalServer(db_uri, artifacts_destination="s3://run/mlflow")
    url = server.__enter__()
    cfg = _with(smoke_base, f"data.shards={s3.uri('run', 'shards')}",
                f"train.storage={s3.uri('run', 'ray_results')}", f"tracking.uri={url}",
                "tracking.experiment=s3", "train.stage2_epochs=2", "tracking.retry_s=3",
                "train.max_failures=0", "tracking.heatmaps=0", "tracking.system_metrics=false")
    try:
        assert prepare_dataset(cfg, say=lambda *_: None)["rows"] == cfg.data.synth.clips
        assert "shards/summary.json" in s3.keys("run")

        thread, box = _in_thread(fit, cfg, say=lambda *_: None)
        run_id = _wait_first_epoch(db_uri, "s3")
        server.__exit__()  # gone after epoch 1: the run fails with a --resume hint
        thread.join(timeout=600)
        error = box.get("error")
        assert isinstance(error, TrackingUnavailableError), repr(error)
        run_path = re.search(r"dmt train --resume (\S+)`", str(error)).group(1)
        assert run_path.startswith("s3://run/ray_results/") and "endpoint_override" in run_path
        assert any(k.startswith("ray_results/") and k.endswith("state.pt")
                   for k in s3.keys("run")), "no checkpoint in the bucket"

        server = LocalServer(db_uri, port=server.port, artifacts_destination="s3://run/mlflow")
        server.__enter__()
        outcome = fit(cfg, resume=run_path, say=lambda *_: None)
        run = tracking.get_run(db_uri, run_id)
        assert outcome.run_id == run_id and run.info.status == "FINISHED"
        assert int(run.data.tags["resumed_from_epoch"]) >= 1  # from the bucket's checkpoint
        steps = sorted({s for s, _ in tracking.metric_history(db_uri, run_id, "train/loss_total")})
        assert steps == [1, 2, 3]
        keys = s3.keys("run", "mlflow")
        assert any(k.endswith("checkpoint/state.pt") for k in keys), keys
        assert any(k.endswith("MLmodel") for k in keys), keys  # the logged model, in the bucket
        # the final checkpoint, named by its URI, is evaluated like a local one
        assert str(outcome.checkpoint_path).startswith("s3://run/ray_results/")
        result = evaluate_checkpoint(str(outcome.checkpoint_path), cfg.data.shards, "test")
        assert result["checkpoint"] == str(outcome.checkpoint_path)
        key = "test/teacher_mean/ciou"
        assert result["metrics"][key] == pytest.approx(outcome.metrics[key])
    finally:
        server.__exit__()
