"""Released weights from local files: torchvision's ResNet-18, the PyTorch VGGish port's layer
names and shapes, SoundNet-8 converted from the original; mismatched files fail before training
naming the keys; a checkpoint is self-contained (the weights file can be deleted)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline import config as C
from pipeline.config import ModelConfig
from pipeline.models import build_audio
from pipeline.models.pretrained import read_initial_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def vggish_port_state() -> dict[str, torch.Tensor]:
    """A state dict with the PyTorch VGGish port's names and shapes (harritaylor/torchvggish:
    ``features`` = conv3x3+ReLU / max-pool stack, ``embeddings`` = the FC head, PCA params)."""
    layers, cin = [], 1
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(True)]
            cin = v
    torch.manual_seed(11)
    state = {f"features.{k}": t for k, t in nn.Sequential(*layers).state_dict().items()}
    # the FC head and PCA (4096 x 12288 in the release: shapes do not matter, they are unused)
    state.update({"embeddings.0.weight": torch.zeros(8, 12), "embeddings.0.bias": torch.zeros(8),
                  "pproc.pca_matrix": torch.zeros(128, 128)})
    return state


def soundnet8_state() -> dict[str, torch.Tensor]:
    """A state dict in the converted SoundNet-8 layout: convK.0 Conv2d (k, 1) kernels with bias,
    convK.1 BatchNorm2d, conv8 / conv8_2 classifiers."""
    spec = [(1, 16, 64), (16, 32, 32), (32, 64, 16), (64, 128, 8), (128, 256, 4), (256, 512, 4),
            (512, 1024, 4)]
    torch.manual_seed(12)
    state = {}
    for k, (cin, cout, ks) in enumerate(spec, 1):
        block = nn.Sequential(nn.Conv2d(cin, cout, (ks, 1), (2, 1), (ks // 2, 0)),
                              nn.BatchNorm2d(cout))
        block[1].running_mean.uniform_(-1, 1)
        state.update({f"conv{k}.{n}": t for n, t in block.state_dict().items()})
    state["conv8.0.weight"] = torch.zeros(1000, 1024, 8, 1)
    state["conv8_2.0.weight"] = torch.zeros(401, 1024, 8, 1)
    return state


def _cfg(tmp_path, **files) -> ModelConfig:
    cfg = ModelConfig(dim=8, width=8, visual="small", audio_a="vggish", audio_b="soundnet")
    for key, state in files.items():
        path = tmp_path / f"{key}.pth"
        torch.save(state, path)
        setattr(cfg, key, str(path))
    return cfg


def test_vggish_port_and_soundnet8_weights_load(tmp_path):
    vgg, snd = vggish_port_state(), soundnet8_state()
    cfg = _cfg(tmp_path, audio_a_weights={"state_dict": vgg}, audio_b_weights=snd)
    init = read_initial_weights(cfg)
    assert init.visual is None and not any(k.startswith(("embeddings", "pproc"))
                                           for k in init.audio_a)
    a = build_audio("vggish", 8, 8, init=init.audio_a)
    assert torch.equal(a.encoder.trunk[13].weight, vgg["features.13.weight"])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in a.modules())  # the port has none
    b = build_audio("soundnet", 8, 8, init=init.audio_b)
    assert torch.equal(b.encoder.trunk[6][0].weight, snd["conv7.0.weight"].squeeze(-1))
    assert torch.equal(b.encoder.trunk[0][1].running_mean, snd["conv1.1.running_mean"])
    with torch.no_grad():  # the converted kernels compute what the 2-D original computes
        wave = torch.randn(1, 16000) * 0.1
        x = b.frontend(wave)
        ours = b.encoder.trunk[0][0](x)
        ref = nn.functional.conv2d(x.unsqueeze(-1), snd["conv1.0.weight"], snd["conv1.0.bias"],
                                   (2, 1), (32, 0)).squeeze(-1)
        assert torch.allclose(ours, ref, atol=1e-5)


def test_a_mismatched_file_names_the_keys_that_differ(tmp_path):
    vgg = vggish_port_state()
    vgg["features.3.weight"] = torch.zeros(128, 64, 5, 5)
    with pytest.raises(ValueError, match=r"model.audio_a_weights.*features|3.weight \(128, 64, 5"):
        read_initial_weights(_cfg(tmp_path, audio_a_weights=vgg))
    snd = soundnet8_state()
    del snd["conv4.1.running_var"]
    with pytest.raises(ValueError, match=r"audio_b_weights.*missing \['3.1.running_var'\]"):
        read_initial_weights(_cfg(tmp_path, audio_b_weights=snd))
    torch.save(vggish_port_state(), tmp_path / "v.pth")
    small = ModelConfig(audio_a="small", audio_a_weights=str(tmp_path / "v.pth"))
    with pytest.raises(ValueError, match="only vggish and soundnet"):
        read_initial_weights(small)
    with pytest.raises(FileNotFoundError, match="audio_b_weights"):
        read_initial_weights(ModelConfig(audio_b="soundnet", audio_b_weights="/nonexistent.pth"))


def test_torchvision_resnet18_weights_load(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(3)
    ref = resnet18(weights=None)
    cfg = ModelConfig(visual="resnet18", dim=8, visual_weights=str(tmp_path / "r18.pth"))
    torch.save(ref.state_dict(), cfg.visual_weights)
    init = read_initial_weights(cfg)
    from pipeline.models import build_visual

    enc = build_visual("resnet18", 8, 8, 224, init=init.visual)
    assert torch.equal(enc.trunk[0].weight, ref.conv1.weight)
    assert torch.equal(enc.trunk[7][1].conv2.weight, ref.layer4[1].conv2.weight)
    torch.save({"bogus": torch.zeros(1)}, cfg.visual_weights)
    with pytest.raises(ValueError, match="missing"):
        read_initial_weights(cfg)


@pytest.mark.slow
def test_a_checkpoint_needs_no_weights_file(smoke_base, tmp_path, capsys):
    """Train from a local ResNet-18 file, delete it, then evaluate, localize and resume."""
    from torchvision.models import resnet18

    from pipeline.checkpoint_uri import evaluate_checkpoint
    from pipeline.localize import localize
    from pipeline.train.driver import fit

    weights = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), weights)
    cfg = C.from_dict(C.to_dict(smoke_base))
    for text in ("model.visual=resnet18", f"model.visual_weights={weights}",
                 "train.steps_per_epoch=2", "tracking.heatmaps=0",
                 f"train.storage={tmp_path / 'ray_results'}"):
        C.set_key(cfg, *C.parse_override(text))
    outcome = fit(cfg, say=lambda *_: None)
    weights.unlink()
    shards = C.data_paths(cfg.data).shards
    scores = evaluate_checkpoint(outcome.checkpoint_path, shards, "test")["metrics"]
    assert 0.0 <= scores["test/ciou"] <= 1.0
    video = sorted((C.data_paths(cfg.data).videos).glob("*.mp4"))[0]
    assert localize(video, str(outcome.checkpoint_path)).map.shape == (224, 224)
    again = fit(cfg, resume=str(outcome.ray_run_path), say=lambda *_: None)
    assert again.run_id == outcome.run_id and again.checkpoint_path is not None
