"""The run's model is the best epoch on the validation split, not the last: logged, tagged with
its epoch, registered, and scored on the test split; ``--resume`` still continues the last."""

from __future__ import annotations

import pytest

from pipeline import tracking
from pipeline.engine import checkpoint as ckpt_io
from tests.dmt_helpers import _with

pytestmark = pytest.mark.slow


def test_the_registered_model_is_the_best_epoch_on_validation(smoke_base, tmp_path):
    from pipeline.checkpoint_uri import resolve_checkpoint
    from pipeline.train.driver import fit

    # a config whose validation CIoU peaks early and then falls (seeded: the same every time)
    cfg = _with(smoke_base, "train.stage2_epochs=5", "data.val_fraction=0.5", "train.seed=1",
                "tracking.system_metrics=false", "tracking.heatmaps=0")
    outcome = fit(cfg, say=lambda *_: None)
    uri, run_id = outcome.tracking_uri, outcome.run_id
    val = [v for _, v in tracking.metric_history(uri, run_id, "val/ciou")]
    epochs = cfg.train.stage1_epochs + cfg.train.stage2_epochs
    assert len(val) == epochs and max(val) > val[-1], val  # a later epoch is worse
    best = max(range(1, epochs + 1), key=lambda e: (val[e - 1], e))  # ties: the later epoch
    assert best < epochs
    assert (outcome.model_epoch, outcome.selected_by) == (best, "val/ciou")
    run = tracking.get_run(uri, run_id)
    assert run.data.tags["model.epoch"] == str(best)
    assert run.data.tags["model.selected_by"] == "val/ciou"
    assert run.data.metrics["model/epoch"] == best
    # its test scores are the ones that epoch logged (the test split is the report)
    test_at = dict(tracking.metric_history(uri, run_id, "test/ciou"))
    assert run.data.metrics["model/test/ciou"] == pytest.approx(test_at[best])
    assert outcome.model_metrics["val/ciou"] == pytest.approx(max(val))
    # registered: the version's checkpoint is that epoch's, byte for byte; the run's
    # checkpoint artifact (for --resume elsewhere) is still the last epoch's
    version = tracking.register_model(uri, run_id, "dmt-select", "candidate")
    registered = resolve_checkpoint("models:/dmt-select@candidate", uri, tmp_path / "m")
    assert ckpt_io.load(registered)["epoch"] == best - 1 and version == "1"
    assert registered.read_bytes() == (outcome.model_checkpoint_path / "state.pt").read_bytes()
    last = resolve_checkpoint(f"runs:/{run_id}/checkpoint", uri, tmp_path / "c")
    assert ckpt_io.load(last)["epoch"] == epochs - 1
    assert ckpt_io.load(outcome.checkpoint_path)["epoch"] == epochs - 1
