"""Audio backbones = a parameter-free front-end (``frontends.py``) + an encoder to (B, dim).

Encoders share one head: global max pool over the trunk's output (EZ-VSL's AdaptiveMaxPool2d),
a linear layer to ``dim`` and L2 normalisation. Trunks:

- ``resnet18``: torchvision ResNet-18 with a 1-channel stem over EZ-VSL's log spectrogram;
- ``vggish``: the VGGish conv stack (64-M-128-M-256-256-M-512-512-M, 3x3 convs with bias, no
  BatchNorm) in the layer layout of the PyTorch VGGish port, so its released weights load
  (``pretrained``), over the whole log-mel (B, 1, frames, 64) instead of 96-frame patches; its
  4096-4096-128 FC head is replaced by the shared max-pool + linear head;
- ``vggish_bn``: the same stack with BatchNorm after every conv, for training from scratch
  (without BatchNorm a 10-layer VGG trains slowly from random weights);
- ``soundnet``: SoundNet-8's conv stack over the waveform up to conv7 (1024 channels), in the
  block layout of the converted original (conv with bias, BatchNorm, ReLU, pools), as 1-D
  convolutions; conv8 (kernel 8) is dropped because at 16 kHz x 3 s conv7 leaves only 3 steps.
  The waveform is scaled to [-256, 256] as the original expects;
- ``small``: four thin conv-bn-relu blocks (stride 16 overall) over a 64-bin log-mel, for CPUs;
- ``small_wave``: four thin 1-D conv-bn-relu blocks over the waveform, shaped like SoundNet's
  first layers (long strided kernels, pools of 8), for CPUs: beside ``small`` it gives DMT's two
  pairs different views of the sound (spectrogram vs waveform), as VGGish and SoundNet do in the
  paper, at a CPU's cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from pipeline.models.frontends import EZVSLSpectrogram, LogMel, Waveform
from pipeline.models.trunk_weights import load_trunk
from pipeline.models.visual import conv_bn_relu

SOUNDNET_MIN_SAMPLES = 8000  # 0.5 s; the shortest input its pooling chain accepts is 4574
SMALL_WAVE_MIN_SAMPLES = 2048  # small_wave's two pools of 8 need about 1,000 samples


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


VGGISH = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


def vggish_trunk(batch_norm: bool = False) -> tuple[nn.Module, int]:
    """The VGGish stack; without BatchNorm its Sequential indices are the port's ``features``
    indices (conv 0, 3, 6, 8, 11, 13), so the released weights load unchanged."""
    layers: list[nn.Module] = []
    cin = 1
    for spec in VGGISH:
        if spec == "M":
            layers.append(nn.MaxPool2d(2, 2))
        elif batch_norm:
            layers.append(conv_bn_relu(cin, spec))
            cin = spec
        else:
            layers += [nn.Conv2d(cin, spec, 3, padding=1), nn.ReLU(inplace=True)]
            cin = spec
    return nn.Sequential(*layers), 512


def soundnet_trunk() -> tuple[nn.Module, int]:
    """SoundNet-8 conv1..conv7 as blocks ``Sequential(conv, bn, relu[, pool])``, the converted
    original's layout (``convK.0`` / ``convK.1`` -> block ``K-1``): (B, 1, T) -> (B, 1024, T')."""
    def block(cin: int, cout: int, k: int, s: int, p: int, pool: int = 0) -> nn.Sequential:
        out = [nn.Conv1d(cin, cout, k, s, p), nn.BatchNorm1d(cout), nn.ReLU(True)]
        return nn.Sequential(*out, *([nn.MaxPool1d(pool, pool)] if pool else []))

    return nn.Sequential(
        block(1, 16, 64, 2, 32, pool=8), block(16, 32, 32, 2, 16, pool=8),
        block(32, 64, 16, 2, 8), block(64, 128, 8, 2, 4),
        block(128, 256, 4, 2, 2, pool=4), block(256, 512, 4, 2, 2),
        block(512, 1024, 4, 2, 2)), 1024


def small_audio_trunk(width: int) -> tuple[nn.Module, int]:
    """conv(width/2, s2) - maxpool 2 - conv(width, s2) - conv(2*width, s2) - conv(2*width):
    (B, 1, 64, 297) -> (B, 2*width, 4, 19); about 0.4 GMAC for 64 clips of 3 s at width 32."""
    w2 = max(width // 2, 1)
    return nn.Sequential(
        conv_bn_relu(1, w2, 2), nn.MaxPool2d(2), conv_bn_relu(w2, width, 2),
        conv_bn_relu(width, 2 * width, 2), conv_bn_relu(2 * width, 2 * width, 1)), 2 * width


def small_wave_trunk(width: int) -> tuple[nn.Module, int]:
    """conv1d(width/4, k64 s2) - pool 8 - conv1d(width/2, k32 s2) - pool 8 - conv1d(width,
    k16 s2) - conv1d(2*width, k8 s2): (B, 1, 48000) -> (B, 2*width, 48)."""
    def block(cin: int, cout: int, k: int, pool: int = 0) -> nn.Sequential:
        out = [nn.Conv1d(cin, cout, k, 2, k // 2, bias=False), nn.BatchNorm1d(cout),
               nn.ReLU(True)]
        return nn.Sequential(*out, *([nn.MaxPool1d(pool, pool)] if pool else []))

    w4, w2 = max(width // 4, 1), max(width // 2, 1)
    return nn.Sequential(block(1, w4, 64, pool=8), block(w4, w2, 32, pool=8),
                         block(w2, width, 16), block(width, 2 * width, 8)), 2 * width


AUDIO_KINDS = ("small", "small_wave", "resnet18", "vggish", "vggish_bn", "soundnet")


def audio_trunk(kind: str, width: int) -> tuple[nn.Module, int]:
    """The trunk of an audio backbone and its output channels."""
    trunks = {"resnet18": resnet18_audio_trunk, "vggish": vggish_trunk,
              "vggish_bn": lambda: vggish_trunk(batch_norm=True), "soundnet": soundnet_trunk,
              "small": lambda: small_audio_trunk(width),
              "small_wave": lambda: small_wave_trunk(width)}
    if kind not in trunks:
        raise ValueError(f"model.audio: unknown audio backbone {kind!r} "
                         f"({', '.join(AUDIO_KINDS)})")
    return trunks[kind]()


def audio_frontend(kind: str, sample_rate: int = 16000) -> nn.Module:
    if kind == "resnet18":
        return EZVSLSpectrogram(sample_rate)
    if kind in ("vggish", "vggish_bn"):
        return LogMel.vggish(sample_rate)
    if kind == "soundnet":
        return Waveform(SOUNDNET_MIN_SAMPLES, scale=256.0)
    if kind == "small_wave":
        return Waveform(SMALL_WAVE_MIN_SAMPLES)
    return LogMel(sample_rate)


def build_audio(kind: str, dim: int, width: int, sample_rate: int = 16000,
                init: dict[str, torch.Tensor] | None = None) -> AudioBackbone:
    """``kind`` in :data:`AUDIO_KINDS`; ``init``: the released weights of a vggish or soundnet
    trunk (``pretrained.read_initial_weights``)."""
    trunk, ch = audio_trunk(kind, width)
    if init is not None:
        load_trunk(trunk, kind, init)
    return AudioBackbone(audio_frontend(kind, sample_rate), AudioEncoder(trunk, ch, dim))
