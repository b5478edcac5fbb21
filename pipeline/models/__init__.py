"""EZ-VSL-style AVSL networks: ``build_model(model_cfg, audio) -> AVSLNet`` and the heads."""

from __future__ import annotations

from pipeline.models.audio import AudioBackbone, build_audio
from pipeline.models.heads import contrastive_loss, localization_map, similarity
from pipeline.models.net import AVSLNet
from pipeline.models.visual import build_visual

__all__ = ["AVSLNet", "AudioBackbone", "build_audio", "build_model", "build_visual",
           "contrastive_loss", "localization_map", "similarity"]


def build_model(model_cfg, audio: str, sample_rate: int = 16000, init_visual=None,
                init_audio=None) -> AVSLNet:
    """One network from a ``ModelConfig``; ``audio`` is the audio backbone (audio_a or audio_b);
    ``init_visual`` / ``init_audio``: released weights (``pretrained.read_initial_weights``) or
    None (random). Files are never read here: a network built from a checkpoint needs none.

    Initialisation uses the global torch RNG: seed it (or use ``torch.random.fork_rng``) before
    calling to get a reproducible network.
    """
    visual = build_visual(model_cfg.visual, model_cfg.dim, model_cfg.width, model_cfg.image_size,
                          init_visual, model_cfg.context_blocks)
    return AVSLNet(visual, build_audio(audio, model_cfg.dim, model_cfg.width, sample_rate,
                                       init_audio), audio)
