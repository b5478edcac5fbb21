"""results.json rows -> report.md (calibration, Tables A-E, the target check) and PNG plots.

Learned rows are aggregated over seeds as mean and sample standard deviation
(``aggregate.py``); CIoU values are printed as fractions (0.750), differences as points (x100),
as the paper prints them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import config as config_mod
from pipeline import tracking
from pipeline.bench import checks, plots
from pipeline.bench.aggregate import aggregate, kind, paired, paired_change
from pipeline.methods import (
    CENTRE_BOX,
    NO_UNLABELED,
    ORACLE,
    REFERENCE,
    TABLES,
    TRIVIAL,
    VARIANTS,
    WHOLE_IMAGE,
)

LABELS = {WHOLE_IMAGE: "whole image", CENTRE_BOX: "centre box", ORACLE: "oracle (ceiling)",
          **{name: v.label for name, v in VARIANTS.items()}}
HEADER = ("| method | labeled clips | seeds | CIoU (median rule) | CIoU (fixed 0.5) | AUC | "
          "mean cIoU | training CPU-s | DMT − row, points: median / fixed rule |\n"
          "| --- | --: | --: | --- | --- | --- | --- | --: | --- |")
HEADER_CHANGE = ("| method | labeled clips | seeds | CIoU (median rule) | CIoU (fixed 0.5) | AUC "
                 "| mean cIoU | row − DMT, points: median / fixed rule |\n"
                 "| --- | --: | --: | --- | --- | --- | --- | --- |")
INTERVALS = ("Differences are paired by seed (rows of one seed share their labeled clips): mean "
             "and [95% t-interval] over the seeds both rows ran.")


def _cell(stat: tuple[float, float], n: int) -> str:
    mean, std = stat
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def _cells(name: str, agg: dict[str, Any]) -> str:
    n = agg["n"]
    return (f"| {LABELS.get(name, name)} | {agg['labeled']} | {n} | {_cell(agg['ciou'], n)} | "
            f"{_cell(agg['ciou_fixed'], n)} | {_cell(agg['auc'], n)} | "
            f"{_cell(agg['mean_ciou'], n)} |")


def table_a(agg: dict, fraction: float, rows: list[dict[str, Any]] = ()) -> str:
    lines = [HEADER]
    for name in TRIVIAL:
        if kind(name, None) in agg:
            lines.append(_cells(name, agg[kind(name, None)]) + " 0 | - |")
    for name in TABLES["A"]:
        a = agg.get(kind(name, fraction))
        if a is not None:
            lead = paired_change(list(rows), REFERENCE, fraction, reference=name) \
                if name != REFERENCE else None
            lines.append(_cells(name, a) + f" {a['train_cpu_s'][0]:.0f} | "
                         f"{lead.text() if lead else '-'} |")
    return "\n".join(lines)


def table_change(agg: dict, rows: list[dict[str, Any]], fraction: float, table: str) -> str:
    """Table B, D or E: each row beside DMT, with its paired (seed by seed) change."""
    lines = [HEADER_CHANGE]
    for name in TABLES[table]:
        a = agg.get(kind(name, fraction))
        if a is None:
            continue
        change = paired_change(rows, name, fraction) if name != REFERENCE else None
        lines.append(_cells(name, a) + f" {change.text() if change else '-'} |")
    return "\n".join(lines)


RULES = (("median", "ciou"), ("fixed 0.5", "ciou_fixed"))


def _difference_lines(label: str, pairs: list) -> list[str]:
    """Two table lines (median, fixed rule) of paired differences, one cell per pair."""
    out = []
    for rule, attr in (("median", "median"), ("fixed 0.5", "fixed")):
        cells = [getattr(p, attr).text() if p else "-" for p in pairs]
        out.append(f"| {label} | {rule} | " + " | ".join(cells) + " |")
    return out


def table_c(agg: dict, fractions: list[float], rows: list[dict[str, Any]] = ()) -> str:
    head = "| method | rule | " + " | ".join(f"{100 * f:g}% labeled" for f in fractions) + " |"
    lines = [head, "| --- | --- |" + " --- |" * len(fractions)]
    for name in TABLES["C"]:
        for rule, metric in RULES:
            cells = []
            for f in fractions:
                a = agg.get(kind(name, f))
                cells.append(f"{_cell(a[metric], a['n'])} ({a['labeled']})" if a else "-")
            lines.append(f"| {LABELS[name]} | {rule} | " + " | ".join(cells) + " |")
    other = TABLES["C"][1]
    lines += _difference_lines(f"DMT − {LABELS[other]}, points", [
        paired_change(list(rows), REFERENCE, f, reference=other) for f in fractions])
    return "\n".join(lines)


def table_pool(agg: dict, fraction: float, multiples: list[float],
               rows: list[dict[str, Any]] = ()) -> str:
    """Table C's second axis: the unlabeled pool at ``fraction`` labeled, as multiples of the
    labeled count; 'all' is every other pool clip, 0x the supervised row."""
    pools = [0.0, *sorted(multiples), None]
    head = ("| method | rule | " + " | ".join("all" if m is None else f"{m:g}x" for m in pools)
            + " |")
    lines = [head, "| --- | --- |" + " --- |" * len(pools)]
    for rule, metric in RULES:
        cells = []
        for m in pools:
            name = NO_UNLABELED if m == 0.0 else REFERENCE
            a = agg.get(kind(name, fraction, m or 0.0))
            cells.append(f"{_cell(a[metric], a['n'])} ({a['unlabeled_clips']})" if a else "-")
        label = f"{LABELS[REFERENCE]} ({LABELS[NO_UNLABELED]} at 0x)"
        lines.append(f"| {label} | {rule} | " + " | ".join(cells) + " |")
    base = kind(NO_UNLABELED, fraction)
    lines += _difference_lines(f"DMT − {LABELS[NO_UNLABELED]} at 0x, points", [
        None if m == 0.0 else paired(list(rows), kind(REFERENCE, fraction, m or 0.0), base)
        for m in pools])
    return "\n".join(lines)


def _intro(cfg: config_mod.Config, rows: list[dict[str, Any]], wall_s: float) -> list[str]:
    n_test = next((r.get("n_test") for r in rows if r.get("n_test")), "?")
    versions = ", ".join(f"{k} {v}" for k, v in tracking.package_versions().items())
    s = cfg.data.synth
    return [
        f"# Quality benchmark: {cfg.name}", "",
        f"Synthetic benchmark version {s.version}: {s.clips} clips, {s.categories} categories; "
        f"labeled fraction {100 * cfg.bench.fraction:g}% of the training pool for Tables A, B, "
        f"D and E (each seed labels its own clips); {cfg.train.stage1_epochs} + "
        f"{cfg.train.stage2_epochs} epochs of {cfg.train.steps_per_epoch} steps, batch "
        f"{cfg.optim.batch_size}; {cfg.model.image_size} px; audio backbones "
        f"{cfg.model.audio_a} / {cfg.model.audio_b}. Git commit {tracking.git_commit()}; "
        f"{versions}. Wall time so far {wall_s / 60:.1f} min. {_scored(cfg, n_test)} "
        f"CIoU = fraction of scored clips with cIoU >= 0.5; mean ± standard deviation over "
        f"seeds. {INTERVALS}", ""]


def _scored(cfg: config_mod.Config, n: Any) -> str:
    if cfg.bench.split == "val":
        return (f"Scored on the **validation** split: {n} clips held out of the training pool "
                f"(the test split is not read).")
    return f"Scored on the **test** split ({n} clips)."


def write_report(out: Path, rows: list[dict[str, Any]], cfg: config_mod.Config,
                 wall_s: float) -> Path:
    agg = aggregate(rows)
    lists = config_mod.bench_lists(cfg.bench)
    frac = cfg.bench.fraction
    pngs = plots.write_plots(out, rows, agg, cfg)
    parts = _intro(cfg, rows, wall_s)
    parts += ["## Calibration (methods other than DMT)", "", checks.calibration_table(agg, frac),
              ""]
    if "A" in lists.tables:
        parts += ["## Table A: methods (the paper's Table 1)", "", table_a(agg, frac, rows), ""]
    if "B" in lists.tables:
        parts += ["## Table B: ablations (the paper's Figure 5)", "",
                  table_change(agg, rows, frac, "B"), ""]
    if "C" in lists.tables:
        parts += ["## Table C: labeled fraction and unlabeled pool (the paper's Table 6)", "",
                  "Cells: mean CIoU (labeled clips).", "", table_c(agg, lists.fractions, rows), "",
                  f"At {100 * cfg.bench.pool_fraction:g}% labeled, unlabeled pool as a multiple "
                  f"of the labeled count. Cells: mean CIoU (unlabeled clips read).", "",
                  table_pool(agg, cfg.bench.pool_fraction, lists.unlabeled, rows), ""]
    if "D" in lists.tables:
        parts += ["## Table D: the pairs' audio backbones (the paper's Table 4)", "",
                  f"DMT: pair A on {cfg.model.audio_a}, pair B on {cfg.model.audio_b}.", "",
                  table_change(agg, rows, frac, "D"), ""]
    if "E" in lists.tables:
        parts += ["## Table E: choices the paper leaves open", "",
                  f"Each row changes one setting of DMT, scored on the {cfg.bench.split} split; "
                  "a setting is adopted only when it wins on the validation split.", "",
                  table_change(agg, rows, frac, "E"), ""]
    parts += ["## Target", "", *checks.target_check(agg, frac, rows), "",
              "## Plots", "", *[f"![{p.stem}]({p.name})" for p in pngs], ""]
    path = out / "report.md"
    path.write_text("\n".join(parts))
    return path
