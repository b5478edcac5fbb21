"""Initial weights from local files, in the layouts the public releases use
(:mod:`pipeline.models.trunk_weights` converts them).

Files are read once, on the driver, when a run starts from scratch (``read_initial_weights``),
checked against the architecture there (a mismatched file fails before training with the keys
that differ), and handed to the networks as state dicts. A checkpoint holds every weight, so
nothing built from a checkpoint reads these files again.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.models.audio import audio_trunk
from pipeline.models.trunk_weights import StateDict, load_trunk, read_state_dict
from pipeline.models.visual import resnet18_visual_trunk

WEIGHT_KINDS = {"visual": ("resnet18",), "audio": ("vggish", "soundnet")}


@dataclass
class InitialWeights:
    """Source-layout state dicts (None: random init) for the visual and the two audio nets."""

    visual: StateDict | None = None
    audio_a: StateDict | None = None
    audio_b: StateDict | None = None


def read_initial_weights(model_cfg) -> InitialWeights:
    """Read and check every weights file the config names (on the driver, before training)."""
    out = InitialWeights()
    if model_cfg.visual_weights:
        if model_cfg.visual not in WEIGHT_KINDS["visual"]:
            raise ValueError(f"model.visual_weights: only model.visual=resnet18 takes "
                             f"weights, not {model_cfg.visual!r}")
        out.visual = read_state_dict(model_cfg.visual_weights, "model.visual_weights",
                                     "resnet18")
        load_trunk(resnet18_visual_trunk()[0], "resnet18", out.visual, "model.visual_weights",
                   model_cfg.visual_weights)
    for pair in ("a", "b"):
        path, kind = getattr(model_cfg, f"audio_{pair}_weights"), getattr(model_cfg,
                                                                            f"audio_{pair}")
        key = f"model.audio_{pair}_weights"
        if not path:
            continue
        if kind not in WEIGHT_KINDS["audio"]:
            raise ValueError(f"{key}: only vggish and soundnet audio backbones take weights, "
                             f"not model.audio_{pair}={kind!r}")
        state = read_state_dict(path, key, kind)
        load_trunk(audio_trunk(kind, model_cfg.width)[0], kind, state, key, path)
        setattr(out, f"audio_{pair}", state)
    return out
