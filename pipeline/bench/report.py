"""results.json rows -> report.md (Tables A, B, C, the target check) and PNG plots.

Learned rows are aggregated over seeds as mean and sample standard deviation; CIoU values are
printed as fractions (0.750), differences as points (x100), as the paper prints them.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from pipeline import config as config_mod
from pipeline.methods import REFERENCE, TABLES, TRIVIAL, VARIANTS

TARGET_POINTS = (10, 20)  # DMT's lead over each baseline, median / fixed rule
LABELS = {"whole_image": "whole image", "centre_box": "centre box", "oracle": "oracle (ceiling)",
          **{name: v.label for name, v in VARIANTS.items()}}


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(rows: list[dict[str, Any]]) -> dict[tuple[str, float | None], dict[str, Any]]:
    """(method, fraction) -> {"n", "labeled", metric: (mean, std), ...} over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if not r.get("error"):
            frac = None if r["fraction"] is None else round(r["fraction"], 6)
            groups.setdefault((r["method"], frac), []).append(r)
    out = {}
    for key, rs in groups.items():
        agg: dict[str, Any] = {"n": len(rs), "labeled": rs[0]["labeled"]}
        for m in ("ciou", "ciou_fixed", "auc", "mean_ciou", "mse"):
            agg[m] = _stats([r[m] for r in rs])
        agg["train_cpu_s"] = _stats([r.get("train_cpu_s") or 0.0 for r in rs])
        out[key] = agg
    return out


def _cell(stat: tuple[float, float], n: int) -> str:
    mean, std = stat
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def _row_line(name: str, agg: dict[str, Any]) -> str:
    n = agg["n"]
    cpu = agg["train_cpu_s"][0]
    return (f"| {LABELS.get(name, name)} | {agg['labeled']} | {n} | {_cell(agg['ciou'], n)} | "
            f"{_cell(agg['ciou_fixed'], n)} | {_cell(agg['auc'], n)} | "
            f"{_cell(agg['mean_ciou'], n)} | {cpu:.0f} |")


HEADER = ("| method | labeled clips | seeds | CIoU (median rule) | CIoU (fixed 0.5) | AUC | "
          "mean cIoU | training CPU-s |\n| --- | --: | --: | --- | --- | --- | --- | --: |")


HEADER_B = ("| method | labeled clips | seeds | CIoU (median rule) | CIoU (fixed 0.5) | AUC | "
            "mean cIoU | change vs DMT (median / fixed, points) |\n"
            "| --- | --: | --: | --- | --- | --- | --- | --- |")


def table_a(agg: dict, fraction: float) -> str:
    lines = [HEADER]
    for name in TRIVIAL:
        if (name, None) in agg:
            lines.append(_row_line(name, agg[(name, None)]))
    for name in TABLES["A"]:
        key = (name, 1.0 if VARIANTS[name].labels == "all" else round(fraction, 6))
        if key in agg:
            lines.append(_row_line(name, agg[key]))
    return "\n".join(lines)


def paired_change(rows: list[dict[str, Any]], method: str, fraction: float
                  ) -> tuple[float, float, int] | None:
    """Mean of (method - DMT) in points over the seeds both ran (median rule, fixed rule, n):
    an ablation run with fewer seeds is compared with DMT on the same seeds only."""
    def by_seed(name: str) -> dict[int, dict]:
        return {r["seed"]: r for r in rows if r["method"] == name and not r.get("error")
                and r["fraction"] is not None and abs(r["fraction"] - fraction) < 1e-9}

    ours, ref = by_seed(method), by_seed(REFERENCE)
    seeds = sorted(set(ours) & set(ref))
    if not seeds:
        return None
    med = statistics.fmean(ours[s]["ciou"] - ref[s]["ciou"] for s in seeds)
    fix = statistics.fmean(ours[s]["ciou_fixed"] - ref[s]["ciou_fixed"] for s in seeds)
    return 100 * med, 100 * fix, len(seeds)


def table_b(agg: dict, rows: list[dict[str, Any]], fraction: float) -> str:
    lines = [HEADER_B]
    for name in TABLES["B"]:
        a = agg.get((name, round(fraction, 6)))
        if a is None:
            continue
        line = _row_line(name, a).rsplit("|", 2)[0] + "| "  # drop the CPU-s cell
        change = paired_change(rows, name, fraction) if name != REFERENCE else None
        if change is not None:
            d_med, d_fix, n = change
            line += f"{d_med:+.1f} / {d_fix:+.1f} ({n} seed{'s' if n > 1 else ''}) |"
        else:
            line += "- |"
        lines.append(line)
    return "\n".join(lines)


def table_c(agg: dict, fractions: list[float]) -> str:
    head = "| method | rule | " + " | ".join(f"{100 * f:g}% labeled" for f in fractions) + " |"
    lines = [head, "| --- | --- |" + " --- |" * len(fractions)]
    for name in TABLES["C"]:
        for rule, metric in (("median", "ciou"), ("fixed 0.5", "ciou_fixed")):
            cells = []
            for f in fractions:
                a = agg.get((name, round(f, 6)))
                cells.append(f"{_cell(a[metric], a['n'])} ({a['labeled']})" if a else "-")
            lines.append(f"| {LABELS[name]} | {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_check(agg: dict, fraction: float, rows: list[dict[str, Any]] | None = None
                 ) -> list[str]:
    """The issue's goal, measured: DMT's lead in points, ablation costs, share of the bound."""
    f = round(fraction, 6)
    dmt = agg.get((REFERENCE, f))
    if dmt is None:
        return ["DMT was not run."]
    out = []
    need_med, need_fix = TARGET_POINTS
    for name in (n for n, v in VARIANTS.items() if v.baseline):
        other = agg.get((name, f))
        if other is None:
            continue
        d_med = 100 * (dmt["ciou"][0] - other["ciou"][0])
        d_fix = 100 * (dmt["ciou_fixed"][0] - other["ciou_fixed"][0])
        ok = d_med >= need_med and d_fix >= need_fix
        out.append(f"- DMT vs {LABELS[name]}: {d_med:+.1f} points (median rule, goal +{need_med})"
                   f", {d_fix:+.1f} (fixed rule, goal +{need_fix}): {'met' if ok else 'NOT met'}")
    for name in TABLES["B"][1:]:
        change = paired_change(rows or [], name, fraction)
        if change is not None:
            d_med, d_fix, n = -change[0], -change[1], change[2]
            costs = d_med > 0 or d_fix > 0
            out.append(f"- {LABELS[name]} costs {d_med:+.1f} / {d_fix:+.1f} points "
                       f"(median / fixed, DMT on the same {n} seed{'s' if n > 1 else ''}): "
                       f"{'costs something' if costs else 'costs nothing'}")
    upper = next((agg[(n, 1.0)] for n, v in VARIANTS.items()
                  if v.labels == "all" and (n, 1.0) in agg), None)
    if upper is not None and min(upper["ciou"][0], upper["ciou_fixed"][0]) > 0:
        r_med = dmt["ciou"][0] / upper["ciou"][0]
        r_fix = dmt["ciou_fixed"][0] / upper["ciou_fixed"][0]
        ok = r_med >= 0.9 and r_fix >= 0.9
        out.append(f"- DMT reaches {100 * r_med:.0f}% (median) / {100 * r_fix:.0f}% (fixed) of "
                   f"the all-labeled upper bound (goal 90%): {'met' if ok else 'NOT met'}")
    return out


def write_report(out: Path, rows: list[dict[str, Any]], cfg: config_mod.Config,
                 wall_s: float) -> Path:
    from pipeline import tracking
    from pipeline.bench import plots

    agg = aggregate(rows)
    tables, _, fractions = config_mod.bench_lists(cfg.bench)
    pngs = plots.write_plots(out, rows, agg, cfg.bench.fraction)
    n_test = next((r.get("n_test") for r in rows if r.get("n_test")), "?")
    versions = ", ".join(f"{k} {v}" for k, v in tracking.package_versions().items())
    parts = [
        f"# Quality benchmark: {cfg.name}", "",
        f"Synthetic benchmark: {cfg.data.synth.clips} clips ({n_test} test), labeled fraction "
        f"{100 * cfg.bench.fraction:g}% of the training pool for Tables A and B; "
        f"{cfg.train.stage1_epochs} + {cfg.train.stage2_epochs} epochs of "
        f"{cfg.train.steps_per_epoch} steps, batch {cfg.optim.batch_size}; "
        f"{cfg.model.image_size} px. Git commit {tracking.git_commit()}; {versions}. "
        f"Wall time so far {wall_s / 60:.1f} min. CIoU = fraction of test clips with "
        f"cIoU >= 0.5; mean ± standard deviation over seeds.", "",
    ]
    if "A" in tables:
        parts += ["## Table A: methods (the paper's Table 1)", "",
                  table_a(agg, cfg.bench.fraction), ""]
    if "B" in tables:
        parts += ["## Table B: ablations (the paper's Figure 5)", "",
                  table_b(agg, rows, cfg.bench.fraction), ""]
    if "C" in tables:
        parts += ["## Table C: labeled fraction (the paper's Table 6)", "",
                  "Cells: mean CIoU (labeled clips).", "", table_c(agg, fractions), ""]
    parts += ["## Target", "", *target_check(agg, cfg.bench.fraction, rows), "",
              "## Plots", "", *[f"![{p.stem}]({p.name})" for p in pngs], ""]
    path = out / "report.md"
    path.write_text("\n".join(parts))
    return path
