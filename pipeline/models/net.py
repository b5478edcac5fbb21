"""The EZ-VSL-style audio-visual network (one "model" of docs/method.md §2)."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.models.audio import AudioBackbone
from pipeline.models.visual import VisualEncoder


class AVSLNet(nn.Module):
    """frames (B, 3, S, S) in [0, 1] and audio (B, T) at 16 kHz -> (v (B, D, h, w), a (B, D)).

    The audio path is split so augmentation can act between front-end and encoder:
    ``audio_input(wave) -> x`` (no parameters, no gradient needed) and
    ``encode_audio_input(x) -> a``. ``forward(frames, x, audio_is_input=True)`` runs the encoders
    on an already computed (e.g. masked) front-end output; training code calls the module itself
    so a DistributedDataParallel wrapper sees the forward and synchronises gradients.
    """

    def __init__(self, visual: VisualEncoder, audio: AudioBackbone, audio_kind: str = ""):
        super().__init__()
        self.visual = visual
        self.audio = audio
        self.audio_kind = audio_kind

    @property
    def audio_frontend(self) -> nn.Module:
        """The front-end module (its ``time_axis``/``freq_axis`` say how to mask its output)."""
        return self.audio.frontend

    def encode_visual(self, frames: torch.Tensor) -> torch.Tensor:
        return self.visual(frames)

    def audio_input(self, wave: torch.Tensor) -> torch.Tensor:
        return self.audio.frontend(wave)

    def encode_audio_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.audio.encoder(x)

    def forward(self, frames: torch.Tensor, audio: torch.Tensor,
                audio_is_input: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        x = audio if audio_is_input else self.audio_input(audio)
        return self.encode_visual(frames), self.encode_audio_input(x)
