"""Weak and strong views (docs/method.md §5.1, §5.5).

Weak view (teachers): the identity. The loader already delivers the frame at the network's size,
and an identity weak view means the teachers' maps need no geometric inverse before they become
pseudo-labels.

Strong view (students), all randomness drawn per sample from a ``torch.Generator`` (seedable,
independent of the global RNG):

- frame, photometric: brightness, contrast and saturation factors uniform in
  ``[1 - color_jitter, 1 + color_jitter]``; Gaussian blur with probability ``blur_prob`` (sigma
  uniform in [0.1, 2.0] at 224 px, scaled with the frame side; kernel ~3 sigma each side);
  grayscale with probability ``gray_prob``. torchvision's formulas (v2 functional
  ``rgb_to_grayscale`` and the blends of its ``adjust_*`` ops), batched with per-sample factors.
- frame, geometric: horizontal flip with probability ``flip_prob``; with ``crop_scale`` < 1, a
  zoom into a random square whose side is a fraction in ``[crop_scale, 1]`` of the frame's,
  anywhere inside it (no padding), resized back to the frame's size. Every label map passed
  along (gt box map, pseudo-label) is flipped and cropped with its frame: the same normalised
  sampling grid (``affine_grid``) resamples the frame (S px) and the map (224 px).
- audio: SpecAugment-style masks on the front-end output with torchaudio's
  ``mask_along_axis_iid``: one time mask of up to ``time_mask`` of the frames and one frequency
  mask of up to ``freq_mask`` of the bins, per sample, filled with the batch mean (the spectrum's
  "neutral" level). For a waveform front-end (SoundNet) only the time mask applies, filled with 0
  (silence).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
import torchvision.transforms.v2.functional as TF

BLUR_SIGMA = (0.1, 2.0)  # SimCLR's range at 224 px


def weak_view(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) -> the same tensor (see the module docstring for why)."""
    return frames


def _blend(img: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend`` with one ratio per sample (B, 1, 1, 1)."""
    return (ratio * img + (1 - ratio) * other).clamp(0.0, 1.0)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """``TF.gaussian_blur`` (same kernel, reflect padding) with one sigma per sample (B,):
    one grouped separable convolution for the whole batch instead of a loop."""
    b, c, h, w = x.shape
    r = torch.arange(kernel, dtype=x.dtype, device=x.device) - kernel // 2
    k = torch.exp(-0.5 * (r[None] / sigma[:, None]) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, K)
    y = F.pad(x.reshape(1, b * c, h, w), [kernel // 2] * 4, mode="reflect")
    y = F.conv2d(y, k.view(b * c, 1, 1, kernel), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, kernel, 1), groups=b * c)
    return y.view(b, c, h, w)


@torch.no_grad()
def photometric(frames: torch.Tensor, cfg, gen: torch.Generator) -> torch.Tensor:
    """Colour jitter, blur and grayscale with independent draws per sample: (B, 3, S, S) -> same.

    The brightness/contrast/saturation formulas are torchvision's ``adjust_*`` ones (blend with
    black / the gray mean / the gray image), batched with per-sample factors; grayscale is
    ``TF.rgb_to_grayscale``. No gradient: augmentation acts on data.
    """
    b = frames.shape[0]
    u = torch.rand(b, 6, generator=gen).to(frames.device, frames.dtype)
    x, s = frames, cfg.color_jitter
    if s > 0:
        factor = lambda i: (1 + s * (2 * u[:, i] - 1)).view(b, 1, 1, 1)  # noqa: E731
        x = _blend(x, torch.zeros_like(x), factor(0))  # brightness
        x = _blend(x, TF.rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True), factor(1))
        x = _blend(x, TF.rgb_to_grayscale(x), factor(2))  # saturation
    blur = (u[:, 3] < cfg.blur_prob).view(b, 1, 1, 1)
    if bool(blur.any()):
        scale = frames.shape[-1] / 224.0  # sigma range is defined at 224 px
        kernel = 2 * max(1, round(3 * BLUR_SIGMA[1] * scale)) + 1
        sigma = (BLUR_SIGMA[0] + (BLUR_SIGMA[1] - BLUR_SIGMA[0]) * u[:, 4]) * scale
        x = torch.where(blur, _gaussian_blur(x, sigma, kernel), x)
    gray = (u[:, 5] < cfg.gray_prob).view(b, 1, 1, 1)
    return torch.where(gray, TF.rgb_to_grayscale(x, num_output_channels=3), x)


def random_flip(frames: torch.Tensor, maps: Sequence[torch.Tensor | None], prob: float,
                gen: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """Flip each sample left-right with probability ``prob``; frames (B, 3, S, S) and every map
    (B, H, W) of the same sample flip together (None entries pass through)."""
    flip = (torch.rand(frames.shape[0], generator=gen) < prob).to(frames.device)
    out_frames = torch.where(flip.view(-1, 1, 1, 1), frames.flip(-1), frames)
    out_maps = [None if m is None else torch.where(flip.view(-1, 1, 1).to(m.device), m.flip(-1), m)
                for m in maps]
    return out_frames, out_maps


@torch.no_grad()
def random_crop(frames: torch.Tensor, maps: Sequence[torch.Tensor | None], min_scale: float,
                gen: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """Zoom each sample into a random square (side fraction s uniform in [min_scale, 1], centre
    anywhere that keeps it inside the frame) resized back: frames (B, 3, S, S) and every map
    (B, H, W) of a sample through the same normalised grid, bilinear, so a box stays on its
    object (maps come back float). ``min_scale`` 1 is the identity and draws nothing."""
    if min_scale >= 1.0:
        return frames, list(maps)
    b = frames.shape[0]
    u = torch.rand(b, 3, generator=gen).to(frames.device, torch.float32)
    scale = min_scale + (1.0 - min_scale) * u[:, 0]
    theta = torch.zeros(b, 2, 3, device=frames.device)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, 0, 2] = (2 * u[:, 1] - 1) * (1 - scale)  # x centre, grid units ([-1, 1])
    theta[:, 1, 2] = (2 * u[:, 2] - 1) * (1 - scale)  # y centre

    def resample(x: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
        # "border": a grid point half a pixel beyond the outermost pixel centre reads the edge
        # pixel, not a blend with black
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)

    out_maps = [None if m is None else resample(m[:, None].float())[:, 0] for m in maps]
    return resample(frames), out_maps


def strong_frames(frames: torch.Tensor, maps: Sequence[torch.Tensor | None], cfg,
                  gen: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """Photometric, flip, then crop (when ``crop_scale`` < 1): frames (B, 3, S, S), maps
    [(B, H, W) or None] -> same shapes."""
    frames, maps = random_flip(photometric(frames, cfg, gen), maps, cfg.flip_prob, gen)
    return random_crop(frames, maps, cfg.crop_scale, gen)


def mask_audio_input(x: torch.Tensor, time_axis: int, freq_axis: int | None, cfg,
                     gen: torch.Generator) -> torch.Tensor:
    """SpecAugment on a front-end output x (B, 1, ...): returns a masked copy, same shape.

    torchaudio draws its masks from the global RNG, so it runs inside ``fork_rng`` seeded from
    ``gen``: the result depends only on ``gen`` and the global RNG stream is left untouched.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    devices = [x.device] if x.device.type == "cuda" else []
    waveform = freq_axis is None
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        fill = 0.0 if waveform else float(x.mean())
        width = int(cfg.time_mask * x.shape[time_axis])
        if width >= 1:
            x = AF.mask_along_axis_iid(x, width, fill, time_axis)
        if not waveform and int(cfg.freq_mask * x.shape[freq_axis]) >= 1:
            x = AF.mask_along_axis_iid(x, int(cfg.freq_mask * x.shape[freq_axis]), fill, freq_axis)
    return x
