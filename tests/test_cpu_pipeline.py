"""Stage 1 + stage 2 on real `dmt synth` clips, without Ray: synth -> decode -> shards -> steps."""

from __future__ import annotations

import math

import pytest

from pipeline import config as C
from pipeline.dmt.state import make_state
from pipeline.dmt.step import dmt_step, stage1_step
from pipeline.engine.batches import to_torch
from pipeline.engine.offline import split_batches


@pytest.fixture(scope="module")
def small_shards(synth_small, tmp_path_factory):
    from pipeline.data.preprocess import run_preprocess

    out = tmp_path_factory.mktemp("cpu_shards") / "shards"
    summary = run_preprocess(synth_small / "videos", out,
                             annotations=synth_small / "annotations.json", fmt="synth",
                             lists=synth_small, engine="local")
    assert summary["rows"] == summary["inputs"] == 24
    return out


def test_stage1_then_stage2_on_synth_clips_report_pseudo_label_statistics(small_shards):
    cfg = C.load(None, ["model.image_size=64", "model.width=8", "model.dim=32",
                        "dmt.ema_decay=0.9", "dmt.tau=0.0", "optim.batch_size=4"])
    state = make_state(cfg.model, cfg.dmt, cfg.optim, seed=0)
    labeled = [to_torch(b, "cpu") for b in split_batches(small_shards, "labeled", 64, 4)]
    unlabeled = [to_torch(b, "cpu") for b in split_batches(small_shards, "unlabeled", 64, 4)]
    assert sum(len(b["frame"]) for b in labeled) == 6
    assert "gt" in labeled[0] and "gt" not in unlabeled[0]  # unlabeled truth: monitoring only
    assert unlabeled[0]["true_map"].shape[1:] == (224, 224)
    assert labeled[0]["frame"].shape[1:] == (3, 64, 64) and labeled[0]["audio"].shape[1] == 48000

    first = stage1_step(state, labeled[0], cfg.dmt)
    assert state.stage == 1 and first["loss_sup"] > 0 and first["loss_con"] > 0
    stats = dmt_step(state, labeled[0], unlabeled[0], cfg.dmt)
    assert state.stage == 2 and state.step == 2
    assert stats["kept"] + stats["filtered"] == len(unlabeled[0]["frame"])
    assert stats["kept"] == len(unlabeled[0]["frame"])  # tau 0 keeps every sample
    assert 0.0 <= stats["consensus_iou"] <= 1.0
    assert 0.0 <= stats["pseudo_iou_all"] <= 1.0 and not math.isnan(stats["loss_pseudo"])


def test_heatmap_clips_are_the_first_test_ids_and_none_when_disabled(small_shards):
    from pipeline.data.reader import read_clips, split_ids
    from pipeline.engine.heatmaps import heatmap_clips

    clips = heatmap_clips(small_shards, 2)
    ids = [row["id"] for row in clips]
    assert ids == split_ids(small_shards, "test")[:2] and len(set(ids)) == 2
    assert all(row["split"] == "test" for row in clips)
    assert heatmap_clips(small_shards, 0) == [] and read_clips(small_shards, []) == []
