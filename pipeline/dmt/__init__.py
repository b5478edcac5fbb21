"""Dual Mean-Teacher and its baselines in plain PyTorch (no Ray, no MLflow).

``make_state`` builds the networks of a method; ``stage1_step`` (warm-up) and ``dmt_step``
(stage 2) each run one optimisation step and return plain-float stats; ``predict_maps`` gives
the (B, 224, 224) maps of one role for evaluation with ``pipeline.metrics``.
"""

from pipeline.dmt.augment import (
                                  mask_audio_input,
                                  photometric,
                                  random_crop,
                                  random_flip,
                                  strong_frames,
                                  weak_view,
)
from pipeline.dmt.ema import ema_update, unwrap
from pipeline.dmt.filtering import binarize, consensus_iou, noise_filter
from pipeline.dmt.ipl import intersect
from pipeline.dmt.losses import contrastive_loss, map_bce
from pipeline.dmt.pseudo_labels import make_pseudo_labels, pseudo_label_stats, teacher_maps
from pipeline.dmt.state import DMTState, make_state
from pipeline.dmt.step import WHICH, dmt_step, finite_mean, predict_maps, stage1_step
from pipeline.dmt.students import Targets, audio_inputs, strong_views, train_students

__all__ = [
    "DMTState", "Targets", "WHICH", "audio_inputs", "binarize", "consensus_iou",
    "contrastive_loss", "dmt_step", "ema_update", "finite_mean", "intersect",
    "make_pseudo_labels", "make_state", "map_bce", "mask_audio_input", "noise_filter",
    "photometric", "predict_maps", "pseudo_label_stats", "random_crop", "random_flip",
    "stage1_step", "strong_frames", "strong_views", "teacher_maps", "train_students", "unwrap",
    "weak_view",
]
