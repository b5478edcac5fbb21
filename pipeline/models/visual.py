"""Visual encoders: frames (B, 3, S, S) in [0, 1] -> L2-normalised feature maps (B, dim, h, w).

Two trunks: torchvision's ResNet-18 cut after ``layer4`` (the papers' choice; 8x8x512 at 224,
see ``VisualEncoder``; optionally initialised from an ImageNet state dict, see ``pretrained``)
and a small conv-bn-relu CNN at 1/8 of the input side for CPU runs. Both are followed by a 1x1
conv to ``dim`` and per-location L2 normalisation, as in EZ-VSL.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18

from pipeline.models.trunk_weights import load_trunk

SMALL_STRIDES, RESNET18_STRIDES = 3, 5  # stride-2 stages of each trunk
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_bn_relu(cin: int, cout: int, stride: int = 1, dims: int = 2,
                 padding_mode: str = "zeros") -> nn.Sequential:
    """3x3 (or length-3) conv without bias (BN follows, a bias would get zero gradient)."""
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    bn = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return nn.Sequential(conv(cin, cout, 3, stride, 1, bias=False, padding_mode=padding_mode),
                         bn(cout), nn.ReLU(inplace=True))


def reflect_padding(trunk: nn.Module) -> nn.Module:
    """Every padded convolution of ``trunk`` pads by reflection instead of zeros (in place).

    Zero padding makes the frame's border a signal the network can read: the demo's networks
    learned a top-edge detector (on a grey frame the first feature row scored 14.6, the inner
    rows 6.2, the last 4.1) and their maps lit up the top rows of every clip, which the data
    never asked for. With reflection a constant frame gives a constant feature map whatever the
    weights, so no position is special. Pretrained weights load unchanged (the same kernels)."""
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d) and any(p > 0 for p in module.padding):
            module.padding_mode = "reflect"
    return trunk


def small_visual_trunk(width: int, context_blocks: int = 0) -> tuple[nn.Module, int]:
    """Four conv-bn-relu blocks of width/2, width, 2*width, 2*width channels, strides 2, 2, 2, 1,
    then ``context_blocks`` more stride-1 blocks: (B, 3, S, S) -> (B, 2*width, S/8, S/8).

    1/8 rather than ResNet's 1/32 because small CPU inputs (64-128 px) would otherwise leave a
    2x2-4x4 map, too coarse to localise anything; the thin first block keeps the cost of the
    full-resolution layers low (about 0.75 GMAC for 64 frames of 96 px at width 32). Each
    context block widens the receptive field by 16 px (31 px without): at 96 px the varied
    scenes' objects span 55-65 px, and a location that sees only a part of one cannot tell its
    shape. Two blocks double the trunk's MACs (12 -> 24 M per 96-px frame) but, at 1/8 of the
    side, add under 10% to a training step (130 vs 120 CPU-s for 420 supervised steps).
    """
    w2 = max(width // 2, 1)
    trunk = nn.Sequential(
        conv_bn_relu(3, w2, 2), conv_bn_relu(w2, width, 2),
        conv_bn_relu(width, 2 * width, 2), conv_bn_relu(2 * width, 2 * width, 1),
        *(conv_bn_relu(2 * width, 2 * width, 1) for _ in range(context_blocks)))
    return reflect_padding(trunk), 2 * width


def resnet18_visual_trunk() -> tuple[nn.Module, int]:
    """torchvision ResNet-18 up to ``layer4``: (B, 3, 224, 224) -> (B, 512, 7, 7)."""
    net = resnet18(weights=None)
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                          net.layer1, net.layer2, net.layer3, net.layer4)
    return reflect_padding(trunk), 512


class VisualEncoder(nn.Module):
    """frames (B, 3, S, S) in [0, 1] -> v (B, dim, h, w), unit norm along dim at every (h, w).

    Frames whose side differs from ``image_size`` are resized (bilinear, antialiased) first, so
    the network always runs at the configured resolution. ImageNet normalisation happens here so
    every caller feeds plain [0, 1] images. Gradients flow to the trunk and the 1x1 projection.

    Symmetric sampling: a stride-2 layer with padding 1 on an even side n samples windows
    [2i-1, 2i+1], so its first output sees the zero padding above the image and its last one no
    padding below: every stride-2 stage adds a top/left edge the network can learn to detect
    (the demo's maps lit up their top rows; flips hide the left one). Frames are reflect-padded
    by ``pad`` pixels right and bottom to a side of ``1 mod 2**strides``, so every stage's input
    side is odd and its windows meet the padding equally at both edges (96 -> 97: 13x13 features;
    224 -> 225: 8x8 for ResNet-18).
    """

    def __init__(self, trunk: nn.Module, channels: int, dim: int, image_size: int,
                 strides: int = 0):
        super().__init__()
        self.trunk = trunk
        self.pad = (1 - image_size) % (2 ** strides) if strides else 0
        self.channels_last = False  # set by the GPU path (train.channels_last)
        self.proj = nn.Conv2d(channels, dim, kernel_size=1)
        self.image_size = image_size
        # Non-persistent: constants, not weights; kept out of checkpoints.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[-2:] != (self.image_size, self.image_size):
            frames = F.interpolate(frames, size=(self.image_size, self.image_size),
                                   mode="bilinear", align_corners=False, antialias=True)
        x = (frames - self.mean) / self.std
        if self.pad:
            x = F.pad(x, (0, self.pad, 0, self.pad), mode="reflect")
        if self.channels_last:  # NHWC convolutions (tensor cores); the output stays a normal map
            x = x.contiguous(memory_format=torch.channels_last)
        return F.normalize(self.proj(self.trunk(x)), dim=1)


def build_visual(kind: str, dim: int, width: int, image_size: int,
                 init: dict[str, torch.Tensor] | None = None,
                 context_blocks: int = 0) -> VisualEncoder:
    """``kind`` in ("small", "resnet18"); ``init``: a torchvision ResNet-18 state dict
    (``pretrained.read_initial_weights``), resnet18 only; ``context_blocks``: small only."""
    if kind == "resnet18":
        if context_blocks:
            raise ValueError("model.context_blocks is only valid with model.visual=small")
        (trunk, ch), strides = resnet18_visual_trunk(), RESNET18_STRIDES
        if init is not None:
            load_trunk(trunk, "resnet18", init, "model.visual_weights")
    elif kind == "small":
        if init is not None:
            raise ValueError("model.visual_weights is only valid with model.visual=resnet18")
        (trunk, ch), strides = small_visual_trunk(width, context_blocks), SMALL_STRIDES
    else:
        raise ValueError(f"model.visual: unknown visual backbone {kind!r} (small, resnet18)")
    return VisualEncoder(trunk, ch, dim, image_size, strides)
