"""Released weights in their own layouts -> this project's trunks (converted and checked).

- visual ``resnet18``: torchvision's ResNet-18 state dict (``conv1.weight``, ``layer4.1...``;
  ``fc.*`` may be absent, it is cut off anyway).
- audio ``vggish``: the widely used PyTorch port of VGGish (harritaylor/torchvggish): its conv
  stack ``features.{0,3,6,8,11,13}.{weight,bias}`` (64-128-256-256-512-512, 3x3, bias, no
  BatchNorm). Its ``embeddings.*`` (the 4096-4096-128 FC head) and ``pproc.*`` (PCA) are not
  used: the shared max-pool + linear head replaces them.
- audio ``soundnet``: SoundNet-8 converted from the original (e.g. smallflyingpig/SoundNet_Pytorch):
  ``conv{1..7}.0`` (Conv2d with (k, 1) kernels, bias) and ``conv{1..7}.1`` (BatchNorm2d);
  ``conv8*`` (the object/scene classifiers) are not used. Conv2d kernels (out, in, k, 1) become
  the Conv1d kernels (out, in, k) of this trunk.

Loading uses ``torch.load(weights_only=True)``: a weights file never runs code.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

StateDict = dict[str, torch.Tensor]
# prefixes of the released files that this product does not use (classifier heads, PCA)
UNUSED = {"resnet18": ("fc.",), "vggish": ("embeddings.", "pproc."),
          "soundnet": ("conv8.", "conv8_2.")}


def read_state_dict(path: str, key: str, kind: str) -> StateDict:
    """The tensors of a weights file, unwrapped (``state_dict`` / ``model`` / ``module.``) and
    without the heads this product does not use."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{key}: no file at {p} (a local {kind} state dict; leave the "
                                f"key empty to train from scratch)")
    data = torch.load(p, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict):
        raise ValueError(f"{key}: {p} holds a {type(data).__name__}, not a state dict")
    out = {}
    for name, tensor in data.items():
        name = name.removeprefix("module.")
        if torch.is_tensor(tensor) and not name.startswith(UNUSED[kind]):
            out[name] = tensor
    return out


def _check(key: str, path: str, module: torch.nn.Module, state: StateDict) -> None:
    """ValueError naming the keys that differ between ``state`` and ``module``."""
    want = module.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    shapes = sorted(f"{k} {tuple(state[k].shape)} != {tuple(want[k].shape)}"
                    for k in set(want) & set(state) if state[k].shape != want[k].shape)
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:6]}" if missing else "",
                 f"unexpected {unexpected[:6]}" if unexpected else "",
                 f"shapes {shapes[:4]}" if shapes else ""]
        raise ValueError(f"{key}: {path} does not fit the architecture: "
                         + "; ".join(p for p in parts if p))


# ---------------------------------------------------------------- layouts -> trunks

RESNET_PARTS = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6",
                "layer4": "7"}  # torchvision names -> indices of the cut trunk


def resnet18_to_trunk(state: StateDict) -> StateDict:
    """torchvision ResNet-18 names -> the trunk ``Sequential(conv1, bn1, relu, maxpool,
    layer1..4)``; unknown names keep their (unmatched) name, so the check reports them."""
    out = {}
    for name, tensor in state.items():
        head, _, rest = name.partition(".")
        out[f"{RESNET_PARTS[head]}.{rest}" if head in RESNET_PARTS else name] = tensor
    return out


def vggish_to_trunk(state: StateDict) -> StateDict:
    """The port's ``features.N.*`` -> the trunk's ``N.*`` (the same layer order)."""
    return {name.removeprefix("features."): t for name, t in state.items()}


SOUNDNET_KEY = re.compile(r"^conv([1-7])\.([01])\.(.+)$")


def soundnet_to_trunk(state: StateDict) -> StateDict:
    """``convK.0`` (Conv2d, (k, 1) kernels) / ``convK.1`` (BatchNorm2d) -> block ``K-1`` of the
    Conv1d trunk; kernels lose their trailing width-1 axis."""
    out = {}
    for name, tensor in state.items():
        m = SOUNDNET_KEY.match(name)
        if not m:
            out[name] = tensor
            continue
        block, layer, rest = int(m.group(1)) - 1, m.group(2), m.group(3)
        if layer == "0" and rest == "weight" and tensor.dim() == 4:
            tensor = tensor.squeeze(-1)
        out[f"{block}.{layer}.{rest}"] = tensor
    return out


TO_TRUNK = {"resnet18": resnet18_to_trunk, "vggish": vggish_to_trunk,
            "soundnet": soundnet_to_trunk}


def load_trunk(trunk: torch.nn.Module, kind: str, state: StateDict, key: str = "weights",
               path: str = "") -> None:
    """Load a source-layout state dict into a freshly built trunk of ``kind`` (checked)."""
    converted = TO_TRUNK[kind](state)
    _check(key, path or "the given state dict", trunk, converted)
    trunk.load_state_dict(converted)
