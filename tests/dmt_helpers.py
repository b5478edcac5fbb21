"""What the DMT and training tests share: augmentation switched off, a stand-in for a DDP
wrapper, and a config copied with overrides."""

from __future__ import annotations

from torch import nn

from pipeline import config as C

NO_AUG = dict(color_jitter=0.0, blur_prob=0.0, gray_prob=0.0, flip_prob=0.0, time_mask=0.0,
              freq_mask=0.0)


class Wrapper(nn.Module):
    """Stands in for DistributedDataParallel: holds the network as ``.module``."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def _with(cfg: C.Config, *overrides: str) -> C.Config:
    """A copy of ``cfg`` with ``key=value`` overrides applied (``cfg`` itself unchanged)."""
    out = C.from_dict(C.to_dict(cfg))
    for text in overrides:
        C.set_key(out, *C.parse_override(text))
    return out
