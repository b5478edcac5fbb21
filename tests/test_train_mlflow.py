"""A Ray Train smoke run as MLflow shows it: params, tags, metrics per epoch, artifacts, the
dataset inputs, system metrics, heatmaps by step, and the final model evaluated by file and by
its runs:/ URI. The other training tests: tests/test_train.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import config as C
from pipeline import tracking
from pipeline.engine import checkpoint as ckpt_io
from tests.dmt_helpers import _with

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_outcome(smoke_base):
    from pipeline.train.driver import fit

    # system metrics sampled every second: the smoke run trains for about ten
    return fit(_with(smoke_base, "tracking.system_metrics_interval_s=1"), say=lambda *_: None)


def test_smoke_run_is_tracked_in_mlflow(smoke_base, smoke_outcome):
    outcome = smoke_outcome
    uri = outcome.tracking_uri
    run = tracking.get_run(uri, outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["dmt.ema_decay"] == str(smoke_base.dmt.ema_decay)
    assert run.data.params["train.steps_per_epoch"] == "3"
    assert run.data.tags["git_commit"] and "version.ray" in run.data.tags
    assert '"rows": 48' in run.data.tags["dataset"]
    epochs = smoke_base.train.stage1_epochs + smoke_base.train.stage2_epochs
    for key in ("train/loss_total", "train/loss_sup", "test/teacher_mean/ciou",
                "test/teacher_a/ciou_fixed", "test/student_b/mse", "test/whole_image/ciou",
                "test/centre_box/auc", "train/samples_per_s"):
        assert len(tracking.metric_history(uri, outcome.run_id, key)) == epochs, key
    for key in ("train/kept", "train/filtered", "train/consensus_iou",  # stage 2 only
                "train/pseudo_good_all"):
        assert len(tracking.metric_history(uri, outcome.run_id, key)) == \
            smoke_base.train.stage2_epochs, key
    # stage 2 reports the pseudo-label quality against the synthetic truth: a mean IoU, and
    # above 0 (min-max normalised maps always mark some pixels; 0 for every sample means the
    # truth or the labels never reached the comparison)
    pseudo_iou = tracking.metric_history(uri, outcome.run_id, "train/pseudo_iou_all")[-1][1]
    assert 0 < pseudo_iou <= 1, pseudo_iou
    # how well the consensus ranks good pseudo-labels above bad ones: a probability, left out
    # of an epoch whose batches held only one kind (NaN is not logged)
    ranks = [v for _, v in tracking.metric_history(uri, outcome.run_id, "train/consensus_auroc")]
    assert len(ranks) <= smoke_base.train.stage2_epochs and all(0 <= v <= 1 for v in ranks)
    artifacts = tracking.list_artifacts(uri, outcome.run_id)
    assert "config.yaml" in artifacts and "checkpoint" in artifacts
    assert tracking.list_artifacts(uri, outcome.run_id, "checkpoint") == ["checkpoint/state.pt"]
    # where the input time went: Ray Data's timings of both training streams
    stats = Path(tracking.download_artifacts(
        uri, f"runs:/{outcome.run_id}/ray_data_stats.txt")).read_text()
    assert "== labeled stream" in stats and "== unlabeled stream" in stats
    assert "no stats" not in stats and "Operator" in stats
    heatmaps = tracking.list_artifacts(uri, outcome.run_id, "heatmaps")
    assert heatmaps == [f"heatmaps/epoch_{e:03d}.png" for e in range(1, epochs + 1)]
    # the final model loads safely and evaluates through the Ray-free path
    data = ckpt_io.load(outcome.checkpoint_path)
    assert data["epoch"] == epochs - 1 and data["state"]["stage"] == 2
    assert data["state"]["step"] == epochs * smoke_base.train.steps_per_epoch
    from pipeline.checkpoint_uri import evaluate_checkpoint

    shards = C.data_paths(smoke_base.data).shards
    result = evaluate_checkpoint(outcome.checkpoint_path, shards)
    logged = outcome.metrics["test/teacher_mean/ciou"]
    assert result["metrics"]["test/teacher_mean/ciou"] == pytest.approx(logged)
    # the run's MLflow model holds the checkpoint chosen on the validation split (its epoch
    # tagged): evaluated through its URI, it scores what that epoch logged on the test split
    model_id = tracking.run_model_id(uri, outcome.run_id)
    by_uri = evaluate_checkpoint(f"runs:/{outcome.run_id}/model", shards, tracking_uri=uri)
    assert by_uri["checkpoint"] == f"runs:/{outcome.run_id}/model"
    assert tracking.get_run(uri, outcome.run_id).data.tags["model.epoch"] == \
        str(outcome.model_epoch)
    assert by_uri["metrics"] == evaluate_checkpoint(outcome.model_checkpoint_path, shards)[
        "metrics"]
    assert by_uri["metrics"]["test/teacher_mean/ciou"] == pytest.approx(
        outcome.model_metrics["test/teacher_mean/ciou"])
    assert tracking.get_run(uri, outcome.run_id).outputs.model_outputs[0].model_id == model_id


def test_smoke_run_shows_its_data_system_metrics_and_heatmaps_in_mlflow(smoke_base,
                                                                       smoke_outcome):
    """What MLflow's UI reads: dataset inputs, system metrics, images by step, the source."""
    from mlflow.tracking import MlflowClient

    uri, run_id = smoke_outcome.tracking_uri, smoke_outcome.run_id
    run = tracking.get_run(uri, run_id)
    inputs = {d.dataset.name.rsplit("/", 1)[-1]: d for d in run.inputs.dataset_inputs}
    # the validation split the model was chosen on is carved from the labeled clips
    assert sorted(inputs) == ["labeled", "test", "unlabeled", "val"]
    summary = json.loads((C.data_paths(smoke_base.data).shards / "summary.json").read_text())
    val_rows = json.loads(inputs.pop("val").dataset.profile)["rows"]
    assert val_rows == round(summary["splits"]["labeled"]["rows"] * smoke_base.data.val_fraction)
    for split, item in inputs.items():
        profile = json.loads(item.dataset.profile)
        carved = val_rows if split == "labeled" else 0
        assert profile["rows"] == summary["splits"][split]["rows"] - carved > 0
        assert profile["schema_version"] == summary["schema_version"]
        assert json.loads(item.dataset.source)["uri"] == str(C.data_paths(
            smoke_base.data).shards)
        context = {t.key: t.value for t in item.tags}["mlflow.data.context"]
        assert context == ("evaluation" if split == "test" else "training")
    digests = {json.loads(d.dataset.profile)["summary_digest"] for d in inputs.values()}
    assert len(digests) == 1  # one summary.json, one digest
    system = [k for k in run.data.metrics if k.startswith("system/")]
    assert "system/cpu_utilization_percentage" in system
    assert "system/system_memory_usage_megabytes" in system
    epochs = smoke_base.train.stage1_epochs + smoke_base.train.stage2_epochs
    images = tracking.list_artifacts(uri, run_id, "images")
    steps = sorted({int(p.split("+step+")[1].split("+")[0]) for p in images if "+step+" in p})
    assert steps == list(range(1, epochs + 1)), images  # the UI's step slider
    assert run.data.tags["mlflow.source.type"] == "LOCAL"
    assert run.data.tags["mlflow.source.name"] and "smoke" in run.data.tags["mlflow.note.content"]
    exp = MlflowClient(uri).get_experiment(run.info.experiment_id)
    link = tracking.run_url(uri, run_id, exp.experiment_id)
    assert link.endswith(f"/runs/{run_id}?workflowType=machine_learning")


def test_an_evaluation_is_logged_against_the_model_and_the_dataset(smoke_base, smoke_outcome,
                                                                     capsys):
    """`dmt evaluate` of a registered model: an MLflow run whose metrics are linked to the
    model and to the scored split, so the model's page lists them per dataset."""
    import argparse

    from mlflow import MlflowClient

    from pipeline.commands import evaluate

    uri, run_id = smoke_outcome.tracking_uri, smoke_outcome.run_id
    shards = C.data_paths(smoke_base.data).shards
    tracking.register_model(uri, run_id, "dmt-evaluated", "candidate")
    # lineage, from the registered version: its training run, the shards it read, the run that
    # preprocessed them (made from their summary.json: the smoke data was prepared without
    # one) and the raw clips
    version = MlflowClient(uri).get_model_version_by_alias("dmt-evaluated", "candidate")
    trained = tracking.get_run(uri, version.run_id)
    prep = tracking.get_run(uri, trained.data.tags[tracking.PREPROCESS_RUN_TAG])
    digests = {json.loads(d.dataset.profile)["summary_digest"]
               for d in trained.inputs.dataset_inputs}
    assert digests == {prep.data.tags["dmt.shards_digest"]}
    assert prep.data.tags["dmt.preprocess_logged_by"] == "train"
    (raw,) = prep.inputs.dataset_inputs
    assert json.loads(raw.dataset.source)["uri"] == str(C.data_paths(smoke_base.data).videos)
    assert prep.data.metrics["rows"] == smoke_base.data.synth.clips
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(["--model", "models:/dmt-evaluated@candidate", "--data",
                              str(shards), "--tracking-uri", uri])
    assert evaluate.run(args) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("MLflow:")][0]
    model_id = tracking.run_model_id(uri, run_id)
    assert f"linked to model {model_id}" in line
    eval_id = line.split("evaluation run ")[1].split(",")[0]
    run = tracking.get_run(uri, eval_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["evaluate.model"] == "models:/dmt-evaluated@candidate"
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name.endswith("/test")
    assert [m.model_id for m in run.inputs.model_inputs] == [model_id]
    # on the model: its scores on that dataset, the numbers of the run's chosen epoch
    scores = {(m.key, m.dataset_name): m.value
              for m in MlflowClient(uri).get_logged_model(model_id).metrics}
    got = scores[("test/teacher_mean/ciou", dataset.dataset.name)]
    assert got == pytest.approx(smoke_outcome.model_metrics["test/teacher_mean/ciou"])
    # a checkpoint file has no model to link to: its run goes to the evaluations experiment
    args = parser.parse_args(["--model", str(smoke_outcome.checkpoint_path), "--data",
                              str(shards), "--tracking-uri", uri])
    assert evaluate.run(args) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("MLflow:")][0]
    assert "linked" not in line
    before = len(tracking.search_runs(uri, "evaluations"))
    args.no_log = True
    assert evaluate.run(args) == 0
    assert len(tracking.search_runs(uri, "evaluations")) == before
