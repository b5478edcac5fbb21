"""The quality benchmark: its plan, labeled subsets, validation split, batches and a smoke run
(its report: test_bench_report.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import config as C
from pipeline import tracking
from pipeline.bench import memory, plan, runner
from pipeline.bench.plan import BenchRow
from pipeline.engine.loop import stage_of, total_epochs

REPO = Path(__file__).resolve().parents[1]


def test_plan_shares_rows_between_tables_and_orders_compute_matched_rows_last():
    cfg = C.load(REPO / "jobs/configs/bench.yaml")
    rows = plan.build_plan(cfg)
    keys = [r.key for r in rows]
    assert len(keys) == len(set(keys))
    by_key = {r.key: r for r in rows}
    assert by_key["dmt@0.03#seed0"].tables == ("A", "B", "C", "D")  # one run, four tables
    assert by_key["dmt@0.03#seed2"].tables == ("A", "B", "C", "D")  # 3 seeds for B-D
    assert by_key["dmt@0.03#seed5"].tables == ("A",)  # Table A: 6 seeds
    assert "supervised_all@1#seed5" in by_key and "ezvsl@0.03#seed5" in by_key
    assert "dmt@0.1#seed2" in by_key and "dmt@0.1#seed3" not in by_key
    assert "dmt_same_audio@0.03#seed2" in by_key and "dmt_no_ipl@0.03#seed2" in by_key
    assert "dmt_frozen_teachers@0.03#seed2" in by_key and "dmt_ema0@0.03#seed2" in by_key
    # Table C's second axis, off in bench.yaml: DMT at 1% labeled with 2.5x, 10x, 40x pools
    assert not any(r.unlabeled for r in rows)
    C.set_key(cfg, "bench.unlabeled", "2.5,10,40")
    with_pools = {r.key: r for r in plan.build_plan(cfg)}
    pool = {r.unlabeled for r in with_pools.values() if r.method == "dmt" and r.fraction == 0.01}
    assert pool == {0.0, 2.5, 10.0, 40.0}
    assert with_pools["dmt@0.01+u40x#seed1"].tables == ("C",)
    assert not any(r.unlabeled for r in rows if r.method != "dmt")  # supervised reads none
    assert by_key["supervised_matched@0.03#seed1"].budget_of == "dmt@0.03#seed1"
    assert keys.index("supervised_matched@0.03#seed1") > keys.index("dmt@0.03#seed1")
    last_a = max(i for i, r in enumerate(rows) if "A" in r.tables)
    assert all("A" not in r.tables for r in rows[last_a + 1:])  # Table A runs first


def test_plan_filters_methods_and_refuses_a_matched_row_without_dmt():
    cfg = C.load(REPO / "jobs/configs/bench_quick.yaml")
    quick = plan.build_plan(cfg)  # the claim's rows: DMT, its compute-matched pair, the bound
    assert {r.method for r in quick} == {"supervised", "dmt", "supervised_matched",
                                         "supervised_all"}
    assert [r.key for r in quick].index("supervised_matched@0.03#seed0") > \
        [r.key for r in quick].index("dmt@0.03#seed0")
    assert C.flatten(cfg)["data.synth.version"] == 2
    C.set_key(cfg, "bench.methods", "supervised_matched")
    with pytest.raises(C.ConfigError, match="include dmt"):
        plan.build_plan(cfg)
    with pytest.raises(C.ConfigError, match="bench.fractions"):
        C.load(None, ["bench.fractions=0.1,2"])
    with pytest.raises(C.ConfigError, match="bench.methods: dmt_typo"):
        C.load(None, ["bench.methods=dmt_typo"])
    with pytest.raises(C.ConfigError, match="bench.unlabeled: 120x"):  # 1% x 121 > the pool
        C.load(None, ["bench.unlabeled=2.5,120"])
    with pytest.raises(C.ConfigError, match="bench.unlabeled"):
        C.load(None, ["bench.unlabeled=2.5,lots"])


def test_row_configs_change_only_the_method_and_its_schedule():
    cfg = C.load(REPO / "jobs/configs/bench.yaml")
    base = C.flatten(cfg)
    ez_cfg = plan.row_config(cfg, BenchRow("ezvsl", 0.03, 1, ("A",)))
    ez = C.flatten(ez_cfg)
    assert {k for k in base if base[k] != ez[k]} == {"name", "dmt.method", "train.seed"}
    # the one schedule of pipeline.methods: EZ-VSL has no warm-up, all its epochs are stage 2,
    # as many as DMT's stage 1 + stage 2 (the same rule `dmt train` and the sweep read)
    assert total_epochs(ez_cfg) == total_epochs(cfg) == 24
    assert {stage_of(e, ez_cfg) for e in range(total_epochs(ez_cfg))} == {2}
    assert [stage_of(e, cfg) for e in range(6)] == [1, 1, 1, 1, 2, 2]
    nf = C.flatten(plan.row_config(cfg, BenchRow("dmt_no_nf", 0.03, 0, ("B",))))
    changed = {k for k in base if base[k] != nf[k]}
    assert changed == {"name", "dmt.noise_filtering"}
    # the two rows without averaging teachers change one key each, not the same one
    frozen = C.flatten(plan.row_config(cfg, BenchRow("dmt_frozen_teachers", 0.03, 0, ("B",))))
    assert {k for k in base if base[k] != frozen[k]} == {"name", "dmt.ema"}
    assert frozen["dmt.ema"] is False and frozen["dmt.ema_decay"] == base["dmt.ema_decay"]
    ema0 = C.flatten(plan.row_config(cfg, BenchRow("dmt_ema0", 0.03, 0, ("B",))))
    assert {k for k in base if base[k] != ema0[k]} == {"name", "dmt.ema_decay"}
    assert ema0["dmt.ema"] is True and ema0["dmt.ema_decay"] == 0.0
    m = plan.row_config(cfg, BenchRow("supervised_matched", 0.03, 0, ("A",)))
    assert (m.dmt.method, m.train.stage2_epochs) == ("dmt", 0)  # two networks, labeled only
    # Table D: both pairs on audio_a, whatever audio_a is (the shipped DMT rows differ)
    assert (cfg.model.audio_a, cfg.model.audio_b) == ("small", "small_wave")
    for audio_a in ("small", "vggish"):
        C.set_key(cfg, "model.audio_a", audio_a)
        same = C.flatten(plan.row_config(cfg, BenchRow("dmt_same_audio", 0.03, 0, ("D",))))
        assert same["model.audio_b"] == audio_a
        assert {k for k in same if C.flatten(cfg)[k] != same[k]} == {"name", "model.audio_b"}


def _arrays(n: int, test: int, with_boxes: bool = True, side: int = 8, samples: int = 16,
            rng: np.random.Generator | None = None) -> memory.ClipArrays:
    """``n`` clips, the last ``test`` of them the test split; zeros, or random frames, audio
    and maps drawn from ``rng`` (for rows that train)."""
    ids = np.array([f"c{i:03d}" for i in range(n)])
    if rng is None:
        frame, audio = np.zeros((n, 3, side, side), np.uint8), np.zeros((n, samples), np.float32)
        maps = np.zeros((n, 224, 224), np.float16)
    else:
        frame = rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8)
        audio = rng.standard_normal((n, samples)).astype(np.float32)
        maps = (rng.random((n, 224, 224)) > 0.7).astype(np.float16)
    return memory.ClipArrays(ids=ids, is_test=np.arange(n) >= n - test, frame=frame,
                             audio=audio, map=maps, has_boxes=np.full(n, with_boxes))


def test_labeled_subsets_are_nested_inside_the_training_pool():
    clips = _arrays(120, 20)
    small, mid, big = (set(memory.labeled_subset(clips, f, seed=3)) for f in (0.01, 0.03, 0.1))
    assert (len(small), len(mid), len(big)) == (1, 3, 10)
    assert small <= mid <= big
    assert big <= set(clips.pool) and not big & set(clips.test)
    assert set(memory.labeled_subset(clips, 0.1, seed=4)) != big  # the data seed picks them
    with pytest.raises(ValueError, match="no clips with boxes"):
        memory.labeled_subset(_arrays(10, 2, with_boxes=False), 0.5)


def test_each_seed_labels_its_own_subset_nested_across_fractions():
    clips = _arrays(420, 20)

    def indices(method: str, fraction: float, seed: int, data_seed: int = 5, unlabeled=0.0):
        row = BenchRow(method, fraction, seed, ("A",), unlabeled)
        return [set(i) for i in runner.row_indices(clips, row, data_seed)]

    for seed in range(3):
        small, mid, big = (indices("dmt", f, seed)[0] for f in (0.01, 0.03, 0.1))
        assert (len(small), len(mid), len(big)) == (4, 12, 40) and small <= mid <= big
        lab, unl = indices("dmt", 0.03, seed)
        assert not lab & unl and lab | unl == set(clips.pool)
        # the same seed draws the same clips for every row of that seed (rows are paired)
        assert indices("supervised", 0.03, seed)[0] == lab == indices("dmt", 0.03, seed)[0]
        assert indices("supervised_matched", 0.03, seed)[0] == lab
        assert indices("dmt", 0.01, seed, unlabeled=10)[0] == small
    subsets = [frozenset(indices("dmt", 0.03, seed)[0]) for seed in range(6)]
    assert len(set(subsets)) == 6  # every seed labels other clips
    assert indices("dmt", 0.03, 0, data_seed=6)[0] != set(subsets[0])  # so does the data seed
    # the all-labeled bound and EZ-VSL read the whole pool whatever the seed
    assert indices("supervised_all", 1.0, 4)[0] == set(clips.pool)
    assert indices("ezvsl", 0.03, 4) == [set(clips.pool)] * 2


def test_validation_split_comes_out_of_the_pool_and_drops_the_test_split():
    clips = _arrays(400, 50)
    val = memory.hold_out_validation(clips, 60, seed=0)
    pool_ids, val_ids = set(val.ids[val.pool]), set(val.ids[val.test])
    assert (len(pool_ids), len(val_ids)) == (290, 60) and not pool_ids & val_ids
    assert pool_ids | val_ids == set(clips.ids[clips.pool])  # no test clip is read
    def held_out(seed: int) -> set:
        other = memory.hold_out_validation(clips, 60, seed)
        return set(other.ids[other.test])

    assert held_out(0) == val_ids and held_out(1) != val_ids
    # the rows' subsets come from what is left of the pool
    lab, unl = runner.row_indices(val, BenchRow("dmt", 0.1, 0, ("E",)), 0)
    assert set(val.ids[lab]) | set(val.ids[unl]) == pool_ids and len(lab) == 29
    with pytest.raises(ValueError, match="val_clips=350: the training pool has 350"):
        memory.hold_out_validation(clips, 350, seed=0)
    # the shipped Table E config: 60 labeled clips, as Table A's, and never the test split
    cfg = C.load("bench_val")
    assert (cfg.bench.split, cfg.bench.tables) == ("val", "E")
    assert round(cfg.bench.fraction * (2000 - cfg.bench.val_clips)) == 60


def test_unlabeled_pools_are_nested_and_never_hold_a_labeled_clip():
    clips = _arrays(220, 20)
    labeled = memory.labeled_subset(clips, 0.02, seed=1)  # 4 clips
    pools = [set(memory.unlabeled_subset(clips, labeled, m, seed=1)) for m in (2.5, 10, 40)]
    assert [len(p) for p in pools] == [10, 40, 160]
    assert pools[0] <= pools[1] <= pools[2] <= set(clips.pool)
    assert not pools[2] & set(labeled)
    everything = set(memory.unlabeled_subset(clips, labeled, 0, seed=1))
    assert everything == set(clips.pool) - set(labeled)
    with pytest.raises(ValueError, match="needs 200 clips; the training pool has 196"):
        memory.unlabeled_subset(clips, labeled, 50, seed=1)


def test_batches_of_a_small_set_hold_each_clip_once():
    clips = _arrays(30, 5)
    idx = clips.pool[:5]
    batches = memory.endless_batches(clips, idx, 8, "gt", np.random.default_rng(0))
    for _ in range(3):
        b = next(batches)
        assert sorted(b["id"]) == sorted(clips.ids[idx])
        assert b["gt"].dtype == np.float32 and b["gt"].shape == (5, 224, 224)


@pytest.mark.slow
def test_quick_benchmark_runs_tracks_resumes_and_its_checkpoints_reproduce(
        smoke_base, tmp_path, capsys):
    from pipeline.bench.quality import run_quality
    from pipeline.engine.offline import load_state

    cfg = C.from_dict(C.to_dict(smoke_base), [
        "bench.tables=A", "bench.methods=supervised,dmt,supervised_matched,ezvsl",
        "bench.seeds=1", "bench.fraction=0.25", "tracking.experiment=bench-test"])
    out = run_quality(cfg, tmp_path / "bench", say=lambda *_: None)
    assert not out.failed
    rows = {r["key"]: r for r in json.loads((tmp_path / "bench/results.json").read_text())}
    assert {"whole_image", "centre_box", "oracle", "dmt@0.25#seed0",
            "supervised_matched@0.25#seed0", "ezvsl@0.25#seed0"} <= set(rows)
    dmt, matched = rows["dmt@0.25#seed0"], rows["supervised_matched@0.25#seed0"]
    assert dmt["labeled"] == 9 and rows["ezvsl@0.25#seed0"]["labeled"] == 0
    assert matched["train_cpu_s"] >= dmt["train_cpu_s"]  # trained until DMT's compute
    assert matched["started_at"] < dmt["finished_at"]  # beside DMT, following its CPU time
    # ...and stopped at the first epoch past it
    assert all(h["cpu_s"] < dmt["train_cpu_s"] for h in matched["history"][:-1])
    assert rows["oracle"]["ciou_fixed"] == 1.0
    for key in ("ciou", "auc", "mean_ciou", "ciou_fixed", "seed", "method", "labeled"):
        assert key in dmt
    assert [h["stage"] for h in dmt["history"]] == [1, 2] and "pseudo_iou_kept" in \
        dmt["history"][1]

    # the checkpoint is the one that produced the row: re-scoring it gives the same numbers
    # Scored as the row was (its batch size and thread count): CI once saw a 4e-6 drift in
    # mean_ciou from re-scoring with batches of 16 in a 2-thread process.
    from pipeline.bench.runner import SCORE_BATCH
    from pipeline.engine import evaluation
    from pipeline.engine.batches import to_torch

    state, row_cfg, _ = load_state(dmt["checkpoint"])  # weights_only=True inside
    clips = memory.load_clips(C.data_paths(cfg.data).shards, row_cfg.model.image_size)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.bench.threads)
    try:
        scores = evaluation.score_batches(
            state, memory.ordered_batches(clips, clips.test, SCORE_BATCH),
            lambda b: to_torch(b, state.device))
    finally:
        torch.set_num_threads(threads)
    rescored = evaluation.summarize_scores(scores, "test", "teacher_mean")
    assert rescored["test/ciou"] == pytest.approx(dmt["ciou"])
    assert rescored["test/mean_ciou"] == pytest.approx(dmt["mean_ciou"], abs=1e-5)

    # MLflow: a parent run with one child per learned row, the report as an artifact
    uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
    parent = tracking.get_run(uri, out.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert "report/report.md" in tracking.list_artifacts(uri, out.parent_run_id, "report")
    children = tracking.search_runs(uri, "bench-test",
                                    f"tags.`{tracking.PARENT_TAG}` = '{out.parent_run_id}'")
    assert len(children) == 4
    report_md = (tmp_path / "bench/report.md").read_text()
    assert "## Table A" in report_md and "| **DMT** | 9 | 1 |" in report_md

    # a second invocation resumes: nothing is retrained
    again = run_quality(cfg, tmp_path / "bench", say=print)
    assert "4 already in" in capsys.readouterr().out
    assert again.parent_run_id == out.parent_run_id


def test_no_clip_is_twice_in_a_step_when_streams_share_clips():
    """EZ-VSL reads every pool clip on both streams: its two batches per step come from one
    shuffled pass, so a step never holds a clip twice (a false negative for the contrastive
    loss); disjoint streams (DMT) stay independent."""
    from pipeline.bench.runner import row_indices, row_streams

    clips = _arrays(120, 20)
    cfg = C.load(REPO / "jobs/configs/bench.yaml", ["optim.batch_size=32"])
    for method, overlap in (("ezvsl", True), ("dmt", False)):
        row = BenchRow(method, 0.1, 0, ("A",))
        lab_idx, unl_idx = row_indices(clips, row, 0)
        assert bool(np.intersect1d(lab_idx, unl_idx).size) == overlap
        cfg.dmt.method = method
        labeled, unlabeled = row_streams(clips, cfg, lab_idx, unl_idx,
                                         np.random.default_rng(0))
        for _ in range(40):
            ids = list(next(labeled)["id"]) + list(next(unlabeled)["id"])
            assert len(ids) == len(set(ids)) == (64 if overlap else 10 + 32), method


def test_a_row_trains_at_the_configured_precision():
    """``train.precision`` reaches a benchmark row (bf16 autocast runs on CPUs too): two fp32
    runs agree to the last digit, a bf16 run of the same row does not."""
    from pipeline.bench.runner import train_row

    clips = _arrays(24, 4, side=64, samples=32000, rng=np.random.default_rng(0))
    row = BenchRow("supervised", 0.5, 0, ("A",))

    def first_loss(precision: str) -> float:
        cfg = C.load(REPO / "jobs/configs/smoke.yaml", [
            "dmt.method=supervised", "train.stage2_epochs=0", "train.steps_per_epoch=2",
            f"train.precision={precision}"])
        return train_row(C.to_dict(cfg), row, clips)["history"][0]["loss_total"]

    fp32 = first_loss("fp32")
    assert first_loss("fp32") == fp32
    assert first_loss("bf16") != pytest.approx(fp32, rel=1e-6)
