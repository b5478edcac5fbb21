"""Training state of every method: networks, optimiser, counters, augmentation RNG.

Networks per method (``dmt_cfg.method``, ``pipeline.methods``): ``pairs`` students, student and
teacher k using ``model_cfg.audio_a`` (k = 0) or ``audio_b`` (k = 1); an EMA teacher per student
for the methods with ``teachers`` (DMT: two pairs; mean teacher: one), none otherwise
(supervised, EZ-VSL: one network, ``teachers`` is empty).

Only students are trained by the optimiser (one AdamW over all students' parameters; their losses
are independent, so one optimiser equals one per student). In stage 1 the students are the
warm-up networks and the teachers are kept equal to them after every step, so "teachers after
warm-up" and "students start as copies of their teachers" hold at the switch to stage 2 with no
extra call. Teachers never need gradients: ``requires_grad`` is off and they stay in eval mode.
A later issue may wrap ``students[i]`` in DistributedDataParallel; code here unwraps with
``ema.unwrap`` (``getattr(m, "module", m)``) when it needs attributes.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pipeline.dmt.ema import unwrap
from pipeline.methods import method_of
from pipeline.models import build_model


@dataclass
class DMTState:
    method: str
    students: list[nn.Module]
    teachers: list[nn.Module]
    optimizer: torch.optim.Optimizer
    model_cfg: Any
    dmt_cfg: Any
    device: torch.device
    generator: torch.Generator  # CPU generator for all augmentation draws
    step: int = 0
    stage: int = 1
    # Set by a data-parallel shell: makes the students' buffers (BatchNorm running statistics,
    # updated from each worker's own batch) equal on every worker before teachers follow them,
    # so teachers stay identical across workers. None in a single process.
    sync_buffers: Callable[[nn.Module], None] | None = None
    # Mixed precision (train.precision): the encoders' forward passes run under autocast in
    # this dtype; maps, losses, optimiser and EMA stay float32. fp16 adds a gradient scaler.
    precision: str = "fp32"
    scaler: Any = None  # torch.amp.GradScaler for fp16, else None
    profile: bool = False  # step stats gain time_ema_s (device-synchronised)

    def autocast(self):
        """The context the encoders run in (a no-op in fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (networks unwrapped from DDP, RNG, counters)."""
        out = {
            "method": self.method, "step": self.step, "stage": self.stage,
            "students": [unwrap(m).state_dict() for m in self.students],
            "teachers": [unwrap(m).state_dict() for m in self.teachers],
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }
        if self.scaler is not None:
            out["scaler"] = self.scaler.state_dict()
        return out

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if sd["method"] != self.method:
            raise ValueError(f"checkpoint is for method {sd['method']!r}, state is {self.method!r}")
        for mods, key in ((self.students, "students"), (self.teachers, "teachers")):
            for m, msd in zip(mods, sd[key], strict=True):
                unwrap(m).load_state_dict(msd)
        self.optimizer.load_state_dict(sd["optimizer"])
        self.generator.set_state(sd["generator"])
        if self.scaler is not None and "scaler" in sd:
            self.scaler.load_state_dict(sd["scaler"])
        self.step, self.stage = int(sd["step"]), int(sd["stage"])


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = ("fp32", *AUTOCAST_DTYPES)


def make_state(model_cfg, dmt_cfg, optim_cfg, device: str | torch.device = "cpu",
               seed: int = 0, sample_rate: int = 16000, init=None, precision: str = "fp32",
               channels_last: bool = False) -> DMTState:
    """Build the networks and the optimiser of ``dmt_cfg.method``.

    Pair k is initialised under ``torch.manual_seed(seed * 1000 + k)`` inside ``fork_rng`` (the
    global RNG is untouched), so A and B start differently even with the same backbones and the
    run is reproducible from ``seed``. The augmentation generator is seeded with ``seed``.
    ``sample_rate`` (of the ``audio`` waveforms, ``data.sample_rate``) sets the front-ends.
    ``init``: released weights for a run that starts from scratch
    (``models.pretrained.InitialWeights``: visual for every pair, audio_a / audio_b for pair
    A / B); None when the state is about to be loaded from a checkpoint, which holds them all.
    ``precision``: fp32, bf16 or fp16 (see ``DMTState.autocast``); ``channels_last``: the visual
    encoders run in NHWC memory format (faster convolutions on GPUs).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    method = method_of(dmt_cfg.method)
    device = torch.device(device)
    audios = [model_cfg.audio_a, model_cfg.audio_b][: method.pairs]
    students = []
    for k, audio in enumerate(audios):
        init_audio = getattr(init, ("audio_a", "audio_b")[k], None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1000 + k)
            net = build_model(model_cfg, audio, sample_rate, getattr(init, "visual", None),
                              init_audio)
            if channels_last:
                net.visual.channels_last = True
                net.visual.to(memory_format=torch.channels_last)
            students.append(net.to(device))
    teachers = []
    if method.teachers:
        for s in students:
            t = copy.deepcopy(s).eval()
            t.requires_grad_(False)
            teachers.append(t)
    params = [p for s in students for p in s.parameters()]
    optimizer = torch.optim.AdamW(params, lr=optim_cfg.lr, weight_decay=optim_cfg.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return DMTState(dmt_cfg.method, students, teachers, optimizer, model_cfg, dmt_cfg, device,
                    generator, precision=precision, scaler=scaler)
