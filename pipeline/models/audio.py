"""Audio backbones = a parameter-free front-end (``frontends.py``) + an encoder to (B, dim).

Encoders share one head: global max pool over the trunk's output (EZ-VSL's AdaptiveMaxPool2d),
a linear layer to ``dim`` and L2 normalisation. Trunks:

- ``resnet18``: torchvision ResNet-18 with a 1-channel stem over EZ-VSL's log spectrogram;
- ``vggish``: the VGGish conv stack (64-M-128-M-256-256-M-512-512-M) over the whole log-mel
  (B, 1, frames, 64) instead of 96-frame patches, with BatchNorm added because it trains from
  scratch here; its 4096-4096-128 FC head is replaced by the shared max-pool + linear head;
- ``soundnet``: SoundNet-8's 1-D conv stack over the waveform up to conv7 (1024 channels); conv8
  (kernel 8) is dropped because at 16 kHz x 3 s conv7 leaves only 3 steps;
- ``small``: four thin conv-bn-relu blocks (stride 16 overall) over a 64-bin log-mel, for CPUs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from pipeline.models.frontends import EZVSLSpectrogram, LogMel, Waveform
from pipeline.models.visual import conv_bn_relu

SOUNDNET_MIN_SAMPLES = 8000  # 0.5 s; the shortest input its pooling chain accepts is 4574


class AudioEncoder(nn.Module):
    """front-end output (B, 1, ...) -> a (B, dim), unit norm. Gradients reach trunk and proj."""

    def __init__(self, trunk: nn.Module, channels: int, dim: int):
        super().__init__()
        self.trunk = trunk
        self.proj = nn.Linear(channels, dim)
        nn.init.trunc_normal_(self.proj.weight, std=0.01)  # EZ-VSL's init of aud_proj
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x).flatten(2).amax(dim=2)  # global max pool over time (and frequency)
        return F.normalize(self.proj(h), dim=1)


class AudioBackbone(nn.Module):
    """``frontend(wave (B, T)) -> x`` and ``encoder(x) -> (B, dim)``; forward chains them."""

    def __init__(self, frontend: nn.Module, encoder: AudioEncoder):
        super().__init__()
        self.frontend = frontend
        self.encoder = encoder

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.frontend(wave))


def resnet18_audio_trunk() -> tuple[nn.Module, int]:
    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                          net.layer1, net.layer2, net.layer3, net.layer4)
    return trunk, 512


def vggish_trunk() -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    cin = 1
    for spec in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(conv_bn_relu(cin, spec))
            cin = spec
    return nn.Sequential(*layers), 512


def soundnet_trunk() -> tuple[nn.Module, int]:
    def block(cin: int, cout: int, k: int, s: int, p: int, pool: int = 0) -> list[nn.Module]:
        out = [nn.Conv1d(cin, cout, k, s, p, bias=False), nn.BatchNorm1d(cout), nn.ReLU(True)]
        return out + ([nn.MaxPool1d(pool, pool)] if pool else [])

    return nn.Sequential(
        *block(1, 16, 64, 2, 32, pool=8), *block(16, 32, 32, 2, 16, pool=8),
        *block(32, 64, 16, 2, 8), *block(64, 128, 8, 2, 4),
        *block(128, 256, 4, 2, 2, pool=4), *block(256, 512, 4, 2, 2),
        *block(512, 1024, 4, 2, 2)), 1024


def small_audio_trunk(width: int) -> tuple[nn.Module, int]:
    """conv(width/2, s2) - maxpool 2 - conv(width, s2) - conv(2*width, s2) - conv(2*width):
    (B, 1, 64, 297) -> (B, 2*width, 4, 19); about 0.4 GMAC for 64 clips of 3 s at width 32."""
    w2 = max(width // 2, 1)
    return nn.Sequential(
        conv_bn_relu(1, w2, 2), nn.MaxPool2d(2), conv_bn_relu(w2, width, 2),
        conv_bn_relu(width, 2 * width, 2), conv_bn_relu(2 * width, 2 * width, 1)), 2 * width


def build_audio(kind: str, dim: int, width: int, sample_rate: int = 16000) -> AudioBackbone:
    """``kind`` in ("small", "resnet18", "vggish", "soundnet")."""
    if kind == "resnet18":
        frontend, (trunk, ch) = EZVSLSpectrogram(sample_rate), resnet18_audio_trunk()
    elif kind == "vggish":
        frontend, (trunk, ch) = LogMel.vggish(sample_rate), vggish_trunk()
    elif kind == "soundnet":
        frontend, (trunk, ch) = Waveform(SOUNDNET_MIN_SAMPLES), soundnet_trunk()
    elif kind == "small":
        frontend, (trunk, ch) = LogMel(sample_rate), small_audio_trunk(width)
    else:
        raise ValueError(f"model.audio: unknown audio backbone {kind!r} "
                         "(small, resnet18, vggish, soundnet)")
    return AudioBackbone(frontend, AudioEncoder(trunk, ch, dim))
