"""The rows of the quality benchmark (Tables A-D) and the training config of each.

Every learned row is one method at one labeled fraction and one seed, trained with the base
config's steps so that rows differ only in the method:

- ``ezvsl``: contrastive only, on every training clip, no boxes (all epochs are stage 2).
- ``supervised``: one network on the labeled clips only, as many steps as DMT.
- ``supervised_matched``: two networks (the two audio backbones DMT uses) trained on the labeled
  clips for DMT's compute (CPU seconds of its training loop), maps averaged: DMT costs about 2.7x
  one model, and this row asks whether the extra compute alone explains its gain.
- ``mean_teacher``: one teacher-student pair, pseudo-labels from its teacher, no filtering.
- ``dmt`` and its ablations ``dmt_no_nf`` / ``dmt_no_ipl`` (the paper's Fig. 5), and two rows
  without averaging teachers: ``dmt_frozen_teachers`` (no stage-2 teacher update) and
  ``dmt_ema0`` (each teacher is its student's current weights: EMA decay 0).
- ``supervised_all``: every training clip labeled, the upper bound.
- ``dmt_same_audio``: DMT with both pairs on ``model.audio_a`` (the paper's Table 4).

Table C also runs DMT at ``bench.pool_fraction`` with unlabeled pools of ``bench.unlabeled``
times its labeled count (a row's ``unlabeled``; 0 means every other pool clip).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import config as config_mod
from pipeline.methods import TABLES, VARIANTS, SameAs


@dataclass(frozen=True)
class BenchRow:
    method: str
    fraction: float  # labeled fraction of the training pool (1.0 for supervised_all)
    seed: int
    tables: tuple[str, ...]
    unlabeled: float = 0.0  # unlabeled pool, a multiple of the labeled count (0: all the rest)

    @property
    def key(self) -> str:
        pool = f"+u{self.unlabeled:g}x" if self.unlabeled else ""
        return f"{self.method}@{self.fraction:g}{pool}#seed{self.seed}"

    @property
    def budget_of(self) -> str | None:
        """Key of the row whose training compute this row matches (compute-matched rows)."""
        matches = VARIANTS[self.method].matches
        return BenchRow(matches, self.fraction, self.seed, ()).key if matches else None


def _wanted(cfg: config_mod.Config) -> list[tuple[str, str, float, int, float]]:
    """(table, method, fraction, seed, unlabeled multiple) before de-duplication."""
    lists = config_mod.bench_lists(cfg.bench)
    b = cfg.bench
    out = []
    for table in lists.tables:
        seeds = b.seeds if table == "A" else b.ablation_seeds
        fracs = lists.fractions if table == "C" else [b.fraction]
        for method in TABLES[table]:
            variant = VARIANTS[method]
            for fraction in fracs:
                for seed in range(seeds):
                    all_labeled = variant.labels == "all"
                    out.append((table, method, 1.0 if all_labeled else fraction, seed, 0.0))
            if table == "C" and variant.method.reads_unlabeled and variant.labels == "fraction":
                out += [(table, method, b.pool_fraction, seed, multiple)
                        for multiple in lists.unlabeled for seed in range(seeds)]
    return out


def build_plan(cfg: config_mod.Config) -> list[BenchRow]:
    """The rows to run, de-duplicated (a row shared by several tables runs once), filtered by
    ``bench.methods``; Table A's rows first, a compute-matched row after the row it matches."""
    methods = config_mod.bench_lists(cfg.bench).methods
    merged: dict[tuple, set[str]] = {}
    for table, method, fraction, seed, unlabeled in _wanted(cfg):
        if methods and method not in methods:
            continue
        merged.setdefault((method, round(fraction, 6), seed, unlabeled), set()).add(table)
    rows = [BenchRow(m, f, s, tuple(sorted(t)), u) for (m, f, s, u), t in merged.items()]
    keys = {r.key for r in rows}
    for row in rows:
        if row.budget_of and row.budget_of not in keys:
            matches = VARIANTS[row.method].matches
            raise config_mod.ConfigError(
                f"bench.methods: {row.method} matches the compute of the {matches} row "
                f"{row.budget_of}; include {matches} in bench.methods")
    # Table A first, then what only B or C need: an interrupted run has whole tables
    return sorted(rows, key=lambda r: (min(r.tables), r.seed, r.budget_of is not None,
                                       r.method, r.fraction, r.unlabeled))


def row_config(cfg: config_mod.Config, row: BenchRow) -> config_mod.Config:
    """The base config with the row's method and seed; the compute-matched row gets a stage 1
    long enough for its budget (its loop stops when the budget is spent)."""
    out = config_mod.from_dict(config_mod.to_dict(cfg))
    variant = VARIANTS[row.method]
    for key, value in variant.config_overrides().items():
        if isinstance(value, SameAs):
            value = config_mod.flatten(out)[value.key]
        config_mod.set_key(out, key, value)
    config_mod.set_key(out, "train.seed", row.seed)
    if variant.matches:
        out.train.stage1_epochs = cfg.bench.matched_max_epochs
    out.name = f"{cfg.name}-{row.method}"
    return out
