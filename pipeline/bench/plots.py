"""The benchmark's figures: DMT against the compute-matched pair seed by seed, CIoU against the
labeled fraction and against the unlabeled pool (Table C as plots), and per stage-2 epoch the
pseudo-label quality, the kept count (the paper's Figure 5(a) and 5(d)) and how well the
consensus ranks good pseudo-labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bench.aggregate import kind, kind_of, paired_change
from pipeline.methods import NO_UNLABELED, REFERENCE, TABLES, VARIANTS

CURVE_METHODS = TABLES["C"]  # against the labeled fraction
LEVEL_METHODS = tuple(n for n, v in VARIANTS.items() if v.labels != "fraction")  # flat lines
PSEUDO_METHODS = tuple(n for n, v in VARIANTS.items() if v.method.teachers and v.labels
                       == "fraction" and not v.matches)  # stage 2 with pseudo-labels


def _plt():
    # heavy (0.4 s), and the Agg backend must be chosen before pyplot is first imported
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    """Lay out, write at 100 dpi and close ``fig``: every plot of the report the same way."""
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def ciou_vs_fraction(out: Path, agg: dict) -> Path | None:
    curves = {m: sorted((f, a) for (name, f, pool), a in agg.items()
                        if name == m and f is not None and not pool)
              for m in CURVE_METHODS}
    if not any(len(c) > 1 for c in curves.values()):
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, metric, title in ((axes[0], "ciou", "median rule"),
                              (axes[1], "ciou_fixed", "fixed 0.5 threshold")):
        for m, pts in curves.items():
            if pts:
                xs = [100 * f for f, _ in pts]
                ax.errorbar(xs, [a[metric][0] for _, a in pts], yerr=[a[metric][1] for _, a in pts],
                            marker="o", capsize=3, label=m)
        for m in LEVEL_METHODS:
            hits = [a for (name, _, _), a in agg.items() if name == m]
            if hits:
                colour = "grey" if VARIANTS[m].labels == "none" else "black"
                ax.axhline(hits[0][metric][0], ls="--", lw=1, color=colour, label=m)
        ax.set_xscale("log")
        # ticks at the measured fractions, written plainly (not 6x10^-1)
        ticks = sorted({100 * f for pts in curves.values() for f, _ in pts})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("labeled clips, % of the training pool")
        ax.set_title(f"test CIoU, {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("CIoU")
    axes[0].legend(fontsize=8)
    return _save(plt, fig, out / "ciou_vs_fraction.png")


def _mean_history(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Stage-2 epochs (numbered from 1) and the mean over seeds of ``key`` (NaN where no seed
    has a value: an epoch whose batches left the key undefined)."""
    series = []
    for r in rows:
        vals = [h.get(key, np.nan) for h in r.get("history", []) if h.get("stage") == 2]
        series.append(vals)
    n = min((len(s) for s in series), default=0)
    if n == 0:
        return np.arange(0), np.zeros(0)
    values = np.array([s[:n] for s in series], float)
    seen = np.isfinite(values).any(axis=0)
    means = np.full(n, np.nan)
    means[seen] = np.nanmean(values[:, seen], axis=0)
    return np.arange(1, n + 1), means


def ciou_vs_pool(out: Path, agg: dict, fraction: float) -> Path | None:
    """DMT's CIoU against its unlabeled clips at ``fraction`` labeled (the supervised row at 0)."""
    pts = sorted((a["unlabeled_clips"], a) for (name, f, _), a in agg.items()
                 if name == REFERENCE and f == round(fraction, 6) and a["unlabeled_clips"])
    base = agg.get(kind(NO_UNLABELED, fraction))
    if len(pts) < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for metric, style, title in (("ciou", "o-", "median rule"), ("ciou_fixed", "s--", "fixed")):
        line = ax.errorbar([n for n, _ in pts], [a[metric][0] for _, a in pts],
                           yerr=[a[metric][1] for _, a in pts], fmt=style, capsize=3,
                           label=f"DMT, {title}")
        if base is not None:
            ax.axhline(base[metric][0], ls=":", color=line[0].get_color(),
                       label=f"supervised, {title}")
    ax.set_xscale("log")
    ax.set_xlabel(f"unlabeled clips ({100 * fraction:g}% labeled: "
                  f"{pts[0][1]['labeled']} clips)")
    ax.set_ylabel("CIoU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, out / "ciou_vs_unlabeled.png")


def pseudo_labels(out: Path, rows: list[dict[str, Any]], fraction: float) -> Path | None:
    groups = {m: [r for r in rows if kind_of(r) == kind(m, fraction) and r.get("history")]
              for m in PSEUDO_METHODS}
    groups = {m: rs for m, rs in groups.items() if rs}
    if not groups:
        return None
    plt = _plt()
    fig, (ax_iou, ax_kept, ax_rank) = plt.subplots(1, 3, figsize=(15, 4))
    for i, (m, rs) in enumerate(groups.items()):
        colour = f"C{i}"
        x, before = _mean_history(rs, "pseudo_iou_all")
        _, after = _mean_history(rs, "pseudo_iou_kept")
        if len(x):
            ax_iou.plot(x, before, ls="--", color=colour, label=f"{m}, all")
            ax_iou.plot(x, after, ls="-", color=colour, label=f"{m}, kept")
        x, kept = _mean_history(rs, "kept")
        if len(x):
            ax_kept.plot(x, kept, marker=".", color=colour, label=m)
        x, rank = _mean_history(rs, "consensus_auroc")
        if len(x) and np.isfinite(rank).any():
            ax_rank.plot(x, rank, marker=".", color=colour, label=m)
    ax_iou.set_title("pseudo-label IoU with the true box (before / after NF)")
    ax_kept.set_title("unlabeled clips kept per batch")
    ax_rank.set_title("consensus IoU ranking good pseudo-labels (AUROC)")
    ax_rank.axhline(0.5, ls=":", color="grey", lw=1)
    for ax in (ax_iou, ax_kept, ax_rank):
        ax.set_xlabel("stage-2 epoch")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(plt, fig, out / "pseudo_labels.png")


def dmt_vs_pair(out: Path, rows: list[dict[str, Any]], fraction: float) -> Path | None:
    """DMT and the compute-matched pair seed by seed (a line joins one seed's two rows), under
    both rules: the paired comparison the target is stated on."""
    pair = next(n for n, v in VARIANTS.items() if v.matches == REFERENCE)
    lead = paired_change(rows, REFERENCE, fraction, reference=pair)
    if lead is None:
        return None
    by_seed = {(r["method"], r["seed"]): r for r in rows
               if kind_of(r) in (kind(REFERENCE, fraction), kind(pair, fraction))}
    seeds = sorted(lead.median.per_seed)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, metric, diff, title in ((axes[0], "ciou", lead.median, "median rule"),
                                    (axes[1], "ciou_fixed", lead.fixed, "fixed 0.5 threshold")):
        ours = [by_seed[(REFERENCE, s)][metric] for s in seeds]
        theirs = [by_seed[(pair, s)][metric] for s in seeds]
        ax.vlines(seeds, theirs, ours, color="grey", lw=1)
        ax.plot(seeds, ours, "o", color="C0", label="DMT")
        ax.plot(seeds, theirs, "s", color="C1", label=VARIANTS[pair].label)
        ax.set_title(f"{title}\nDMT − pair {diff.text()} points", fontsize=10)
        ax.set_xlabel("seed (labeled clips, initialisation, order)")
        ax.set_xticks(seeds)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("CIoU")
    return _save(plt, fig, out / "dmt_vs_pair.png")


def write_plots(out: Path, rows: list[dict[str, Any]], agg: dict, cfg) -> list[Path]:
    made = [dmt_vs_pair(out, rows, cfg.bench.fraction), ciou_vs_fraction(out, agg),
            ciou_vs_pool(out, agg, cfg.bench.pool_fraction),
            pseudo_labels(out, rows, cfg.bench.fraction)]
    return [p for p in made if p is not None]
