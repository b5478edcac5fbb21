"""The quality benchmark's report: seeds aggregated, paired differences with their 95%
t-intervals, the calibration, the target and the per-seed plot, on hand-made results rows
(the benchmark itself: test_bench.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.bench import aggregate, checks, plots, report


def _row(method, fraction, seed, ciou, fixed, labeled=75, unlabeled=0.0):
    return {"key": f"{method}@{fraction}#seed{seed}", "method": method, "fraction": fraction,
            "seed": seed, "labeled": labeled, "ciou": ciou, "ciou_fixed": fixed, "auc": 0.5,
            "mean_ciou": 0.5, "mse": 0.1, "train_cpu_s": 10.0, "tables": ["A"],
            "unlabeled": unlabeled, "unlabeled_clips": 40}


def test_report_aggregates_seeds_and_checks_the_target(tmp_path):
    rows = [_row("dmt", 0.03, 0, 0.70, 0.90), _row("dmt", 0.03, 1, 0.80, 0.94),
            _row("supervised_matched", 0.03, 0, 0.50, 0.60),
            _row("supervised_matched", 0.03, 1, 0.70, 0.80),
            _row("dmt_no_nf", 0.03, 0, 0.76, 0.95),
            _row("dmt", 0.03, 0, 0.10, 0.10, unlabeled=2.5),  # another pool: another kind
            _row("supervised_all", 1.0, 0, 0.80, 1.0, labeled=2500)]
    agg = aggregate.aggregate(rows)
    mean, std = agg[("dmt", 0.03, 0.0)]["ciou"]
    assert mean == pytest.approx(0.75) and std == pytest.approx(np.std([0.7, 0.8], ddof=1))
    assert agg[("dmt", 0.03, 2.5)]["ciou"] == (0.10, 0.0)
    lines = checks.target_check(agg, 0.03, rows)
    # paired seed by seed: +20 and +10 points (median), +30 and +14 (fixed); with 2 seeds the
    # 95% t-interval is mean ± t(0.975, 1) * sd / sqrt(2), t = 12.706 from the table
    half_med, half_fix = 12.706 * np.std([20, 10], ddof=1) / 2**0.5, \
        12.706 * np.std([30, 14], ddof=1) / 2**0.5
    assert lines[0] == (
        f"- DMT vs supervised x2, DMT's compute: +15.0 [{15 - half_med:+.1f}, "
        f"{15 + half_med:+.1f}] / +22.0 [{22 - half_fix:+.1f}, {22 + half_fix:+.1f}] (2 seeds) "
        "points (median / fixed rule, mean [95% interval]); goal >= +10 (median) with both "
        "intervals above 0: NOT met")
    # the ablation ran seed 0 only: compared with DMT's seed 0 (0.70 / 0.90), not its mean,
    # with no interval, and one seed cannot meet a goal stated over three
    assert ("- DMT without NF − DMT: +6.0 / +5.0 (1 seed) points (median / fixed); goal: "
            "costs >= 2 (median rule) over 3 seeds: NOT met") in lines
    assert lines[-1].endswith("93.8% (median) / 92.0% (fixed) of the all-labeled upper bound "
                             "(goal 90%): met")
    table = report.table_a(agg, 0.03, rows)
    assert "| **DMT** | 75 | 2 | 0.750 ± 0.071 |" in table
    assert f"| 10 | +15.0 [{15 - half_med:+.1f}, {15 + half_med:+.1f}] / +22.0 [" in table
    # a lead whose interval clears 0 under both rules meets the goal
    rows += [_row("dmt", 0.03, 2, 0.75, 0.92), _row("supervised_matched", 0.03, 2, 0.60, 0.70)]
    rows = [{**r, "ciou": r["ciou"] + (0.02 * r["seed"] if r["method"] == "dmt" else 0)}
            for r in rows]
    lead = aggregate.paired_change(rows, "dmt", 0.03, reference="supervised_matched")
    assert lead.median.per_seed == pytest.approx({0: 20.0, 1: 12.0, 2: 19.0})
    assert lead.median.lo > 0 and lead.fixed.lo > 0
    assert checks.target_check(aggregate.aggregate(rows), 0.03, rows)[0].endswith(": met")
    png = plots.dmt_vs_pair(tmp_path, rows, 0.03)
    assert png.name == "dmt_vs_pair.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.dmt_vs_pair(tmp_path, rows, 0.1) is None  # no pair at that fraction


def test_t_interval_matches_the_table():
    lo, hi = aggregate.t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) = 4.303
    assert (lo, hi) == pytest.approx((2 - 4.303 / 3**0.5, 2 + 4.303 / 3**0.5), abs=1e-3)
    assert all(np.isnan(aggregate.t_interval([5.0])))


def test_calibration_table_reads_the_trivial_and_supervised_rows():
    rows = [_row("supervised", 0.03, s, c, c) for s, c in enumerate((0.40, 0.50, 0.60))]
    rows += [_row("supervised_all", 1.0, s, c, c) for s, c in enumerate((0.84, 0.86, 0.88))]
    rows += [{**_row(name, None, None, c, c), "labeled": 0}
             for name, c in (("oracle", 0.95), ("whole_image", 0.0), ("centre_box", 0.12))]
    got = {check: (value, met) for check, value, _, met in
           checks.calibration(aggregate.aggregate(rows), 0.03)}
    assert got["oracle, CIoU (median rule)"] == ("0.950", "met")
    assert got["centre box, CIoU (median rule)"] == ("0.120", "NOT met")
    assert got["supervised, all labeled, CIoU"] == ("0.860", "met")
    assert got["all labeled - 3% labeled (points)"] == ("+36.0", "met")


def test_pool_table_lists_the_unlabeled_axis():
    rows = [{**_row("supervised", 0.01, 0, 0.3, 0.3, labeled=20), "unlabeled_clips": 0}]
    rows += [{**_row("dmt", 0.01, 0, c, c, labeled=20, unlabeled=m), "unlabeled_clips": n}
             for m, n, c in ((2.5, 50, 0.4), (10.0, 200, 0.5), (0.0, 1980, 0.7))]
    text = report.table_pool(aggregate.aggregate(rows), 0.01, [2.5, 10.0, 40.0], rows)
    head, _, median, _, gain, _ = text.splitlines()
    assert head.split("|")[3:8] == [" 0x ", " 2.5x ", " 10x ", " 40x ", " all "]
    assert median.split("|")[3:8] == [" 0.300 (0) ", " 0.400 (50) ", " 0.500 (200) ", " - ",
                                      " 0.700 (1980) "]
    # each pool against supervised training on the same seed's labeled clips (one seed here)
    assert gain.split("|")[3:8] == [" - ", " +10.0 ", " +20.0 ", " - ", " +40.0 "]
