"""The table of methods: every training method, every model role, every benchmark row.

One definition that every caller reads (the training step, the epoch schedule, evaluation, the
Ray Train and Tune shells, the benchmark and its report); nothing else compares method names.

Schedule, the same for every method: a run has ``train.stage1_epochs + train.stage2_epochs``
epochs. A method with a warm-up spends the first ``stage1_epochs`` in stage 1 (labeled clips
only); a method without one (EZ-VSL: nothing to warm up on, it never reads a box) runs all its
epochs as stage 2, so it gets the same number of steps as the methods it is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

TEACHER_A, TEACHER_B, TEACHER_MEAN = "teacher_a", "teacher_b", "teacher_mean"
STUDENT_A, STUDENT_B = "student_a", "student_b"
# Every model role a checkpoint can report, in the order of the result tables.
ROLES = (TEACHER_MEAN, TEACHER_A, TEACHER_B, STUDENT_A, STUDENT_B)
# The trivial predictors beside every table (their maps: pipeline.metrics.trivial_maps).
WHOLE_IMAGE, CENTRE_BOX, ORACLE = "whole_image", "centre_box", "oracle"
TRIVIAL = (WHOLE_IMAGE, CENTRE_BOX, ORACLE)


@dataclass(frozen=True)
class Method:
    """What a training method is made of and what it reads.

    ``pairs``: networks trained (students); ``teachers``: each has an EMA teacher; ``warmup``:
    has stage 1; ``reads_boxes``: its losses use ground-truth boxes; ``reads_unlabeled``: stage
    2 draws unlabeled clips; ``roles``: the models it reports (first: its default headline).
    """

    name: str
    pairs: int
    teachers: bool
    warmup: bool
    reads_boxes: bool
    reads_unlabeled: bool
    roles: tuple[str, ...]

    def reported_role(self, wanted: str) -> str:
        """``dmt.eval_model`` if this method has that model, else its first role."""
        return wanted if wanted in self.roles else self.roles[0]


DMT = Method("dmt", 2, True, True, True, True, ROLES)
MEAN_TEACHER = Method("mean_teacher", 1, True, True, True, True, (TEACHER_A, STUDENT_A))
SUPERVISED = Method("supervised", 1, False, True, True, False, (STUDENT_A,))
EZVSL = Method("ezvsl", 1, False, False, False, True, (STUDENT_A,))
METHODS: dict[str, Method] = {m.name: m for m in (DMT, SUPERVISED, EZVSL, MEAN_TEACHER)}


def method_of(name: str) -> Method:
    """The method called ``name`` (``dmt.method``); ValueError naming the choices otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"dmt.method: unknown method {name!r} ({', '.join(METHODS)})") from None


# ---------------------------------------------------------------- benchmark rows

@dataclass(frozen=True)
class SameAs:
    """An override whose value is another key of the row's config (``model.audio_b`` =
    ``model.audio_a``), read when the row's config is built."""

    key: str


@dataclass(frozen=True)
class Variant:
    """One row kind of the quality benchmark: a method with config overrides.

    ``labels``: ``fraction`` (the row's labeled fraction of the pool), ``none`` (reads no box)
    or ``all`` (every pool clip labeled: the upper bound). ``matches``: the variant whose
    training compute this one is given (the compute-matched baseline). ``baseline``: DMT's
    lead over this row is part of the benchmark's target.
    """

    name: str
    method: Method
    label: str
    overrides: tuple[tuple[str, object], ...] = ()
    labels: str = "fraction"
    matches: str = ""
    baseline: bool = False

    def config_overrides(self) -> dict[str, object]:
        return {"dmt.method": self.method.name, **dict(self.overrides)}


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("ezvsl", EZVSL, "EZ-VSL (no boxes)", labels="none", baseline=True),
    Variant("supervised", SUPERVISED, "supervised", baseline=True),
    # two supervised networks (DMT's two audio backbones) for DMT's compute, maps averaged:
    # DMT's stage 1 run as long as the budget allows, no stage 2
    Variant("supervised_matched", DMT, "supervised x2, DMT's compute",
            (("train.stage2_epochs", 0), ("dmt.eval_model", TEACHER_MEAN)), matches="dmt",
            baseline=True),
    Variant("mean_teacher", MEAN_TEACHER, "mean teacher (1 pair)"),
    Variant("dmt", DMT, "**DMT**"),
    Variant("supervised_all", SUPERVISED, "supervised, all labeled (upper bound)",
            labels="all"),
    Variant("dmt_no_nf", DMT, "DMT without NF", (("dmt.noise_filtering", False),)),
    Variant("dmt_no_ipl", DMT, "DMT without IPL", (("dmt.ipl", False),)),
    # two ways to take the averaging out of the teachers: no stage-2 update at all (teachers
    # stay the warmed-up networks), or teachers that are their students' current weights
    Variant("dmt_frozen_teachers", DMT, "DMT, teachers frozen after the warm-up",
            (("dmt.ema", False),)),
    Variant("dmt_ema0", DMT, "DMT, teachers = current students (EMA decay 0)",
            (("dmt.ema_decay", 0.0),)),
    # the paper's Table 4: both pairs on one audio backbone, told apart only by their seeds
    Variant("dmt_same_audio", DMT, "DMT, both pairs on audio_a",
            (("model.audio_b", SameAs("model.audio_a")),)),
    # Table E: choices the paper leaves open, each against today's default on the validation
    # split (bench.split=val); adopted into the base config only when it wins there
    Variant("dmt_own_views", DMT, "DMT, a strong view per student",
            (("dmt.student_views", "own"),)),
    Variant("dmt_crop", DMT, "DMT, zoom crop (scale 0.6-1) moving the label maps",
            (("dmt.crop_scale", 0.6),)),
    Variant("dmt_long_warmup", DMT, "DMT, warm-up 3x as long (12 epochs)",
            (("train.stage1_epochs", 12),)),
    Variant("dmt_tau_quantile", DMT, "DMT, tau raised to the batch median of consensus",
            (("dmt.tau_quantile", 0.5),)),
    Variant("dmt_pseudo_weight2", DMT, "DMT, pseudo-label loss weight 2 (1:2:1)",
            (("dmt.lambda_u", 2.0),)),
)}
REFERENCE = "dmt"  # the row every other row is compared with
# The benchmark's tables (the paper's Table 1, Figure 5, Table 6, Table 4; E: the open choices)
# as variant names.
# Table C also varies the unlabeled pool of the methods that read one (``bench.unlabeled``).
TABLES: dict[str, tuple[str, ...]] = {
    "A": ("ezvsl", "supervised", "supervised_matched", "mean_teacher", "dmt", "supervised_all"),
    "B": ("dmt", "dmt_no_nf", "dmt_no_ipl", "dmt_frozen_teachers", "dmt_ema0"),
    "C": ("dmt", "supervised"),
    "D": ("dmt", "dmt_same_audio"),
    "E": ("dmt", "dmt_own_views", "dmt_crop", "dmt_long_warmup", "dmt_tau_quantile",
          "dmt_pseudo_weight2"),
}
# The calibration, read from Table A's rows: the trivial predictors and supervised training
# with few labels and with all of them, run before any semi-supervised method.
FEW_LABELS, ALL_LABELS = "supervised", "supervised_all"
# Table C's unlabeled axis starts at the row that reads no unlabeled clip.
NO_UNLABELED = FEW_LABELS
