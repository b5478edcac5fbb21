"""What the DMT tests share: augmentation switched off, and a stand-in for a DDP wrapper."""

from __future__ import annotations

from torch import nn

NO_AUG = dict(color_jitter=0.0, blur_prob=0.0, gray_prob=0.0, flip_prob=0.0, time_mask=0.0,
              freq_mask=0.0)


class Wrapper(nn.Module):
    """Stands in for DistributedDataParallel: holds the network as ``.module``."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
