"""The EZ-VSL-style network: backbone shapes, heads, weight loading."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.config import ModelConfig
from pipeline.models import build_audio, build_model, build_visual
from pipeline.models.heads import contrastive_loss, localization_map, similarity

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_audio_backbone_is_a_config_choice():
    from pipeline.config.schema import AUDIO_BACKBONES
    from pipeline.models.audio import AUDIO_KINDS

    assert AUDIO_BACKBONES == AUDIO_KINDS


@pytest.mark.parametrize("kind", ["small", "small_wave", "resnet18", "vggish", "vggish_bn",
                                  "soundnet"])
def test_audio_backbones_give_unit_embeddings(kind):
    torch.manual_seed(0)
    net = build_audio(kind, dim=16, width=8).eval()
    with torch.no_grad():
        x = net.frontend(torch.randn(2, 48000) * 0.1)
        a = net.encoder(x)
        short = net(torch.randn(2, 4000) * 0.1)  # any T: shorter than one window still works
    assert a.shape == (2, 16) and short.shape == (2, 16)
    assert torch.allclose(a.norm(dim=1), torch.ones(2), atol=1e-5)
    fe = net.frontend
    assert x.shape[fe.time_axis] > 1
    if fe.freq_axis is not None:
        assert x.shape[fe.freq_axis] in (64, 257)


def test_frontend_layouts():
    wave = torch.randn(1, 48000) * 0.1
    assert build_audio("resnet18", 8, 8).frontend(wave).shape == (1, 1, 257, 200)  # EZ-VSL's
    assert build_audio("vggish", 8, 8).frontend(wave).shape == (1, 1, 297, 64)  # time first
    assert build_audio("small", 8, 8).frontend(wave).shape == (1, 1, 64, 297)
    assert build_audio("soundnet", 8, 8).frontend(wave).shape == (1, 1, 48000)
    small_wave = build_audio("small_wave", 8, 32)
    assert small_wave.frontend(wave).shape == (1, 1, 48000)
    assert small_wave.encoder.trunk(small_wave.frontend(wave)).shape == (1, 64, 48)


def test_visual_backbones_shapes():
    with torch.no_grad():
        r18 = build_visual("resnet18", dim=16, width=8, image_size=224).eval()
        v = r18(torch.rand(1, 3, 224, 224))
        assert v.shape == (1, 16, 8, 8)  # 224 padded to 225: symmetric stride-2 windows
        small = build_visual("small", dim=16, width=8, image_size=96).eval()
        s = small(torch.rand(2, 3, 96, 96))
        assert s.shape == (2, 16, 13, 13)
        assert torch.allclose(s.norm(dim=1), torch.ones(2, 13, 13), atol=1e-5)
        assert small(torch.rand(2, 3, 64, 64)).shape == (2, 16, 13, 13)  # resized to image_size


def test_build_model_and_split_audio_path():
    cfg = ModelConfig(dim=16, width=8, image_size=32)
    torch.manual_seed(0)
    net = build_model(cfg, "small").eval()
    frames, wave = torch.rand(3, 3, 32, 32), torch.randn(3, 16000) * 0.1
    with torch.no_grad():
        v, a = net(frames, wave)
        v2, a2 = net(frames, net.audio_input(wave), audio_is_input=True)
    assert v.shape == (3, 16, 5, 5) and a.shape == (3, 16)
    assert torch.equal(a, a2) and torch.equal(v, v2)
    assert torch.equal(a, net.encode_audio_input(net.audio_input(wave)))
    with pytest.raises(ValueError):
        build_model(cfg, "wav2vec")


# ----------------------------------------------------------------------------- heads

def unit(x, dim):
    return F.normalize(x, dim=dim)


def test_similarity_values():
    v = torch.zeros(2, 2, 1, 2)
    v[0, 0, 0, 0] = v[0, 1, 0, 1] = 1  # frame 0: location 0 along e0, location 1 along e1
    v[1, 0] = 1  # frame 1: both locations along e0
    a = torch.eye(2)  # audio 0 = e0, audio 1 = e1
    s = similarity(v, a, temperature=0.5)
    assert s.shape == (2, 2, 1, 2)
    assert s[0, 0].tolist() == [[2.0, 0.0]] and s[0, 1].tolist() == [[0.0, 2.0]]
    assert s[1, 0].tolist() == [[2.0, 2.0]] and s[1, 1].tolist() == [[0.0, 0.0]]


def test_contrastive_loss_is_mil_infonce_both_ways():
    torch.manual_seed(0)
    v, a = unit(torch.randn(3, 4, 2, 2), 1), unit(torch.randn(3, 4), 1)
    logits = torch.einsum("ndhw,md->nmhw", v, a).flatten(2).max(-1).values / 0.1
    y = torch.arange(3)
    expected = 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.t(), y))
    assert torch.allclose(contrastive_loss(v, a, 0.1), expected)
    # perfectly matched pairs (one location equal to the audio, orthogonal across pairs): low loss
    a = torch.eye(3, 4)
    v = torch.zeros(3, 4, 2, 2)
    v[:, :, 0, 0] = a
    v[:, 3] = 1.0  # the other locations point elsewhere
    v = unit(v, 1)
    assert float(contrastive_loss(v, a, 0.03)) < 1e-6


def test_localization_map_normalised_and_differentiable():
    torch.manual_seed(0)
    v = unit(torch.randn(2, 8, 3, 3), 1).requires_grad_()
    a = unit(torch.randn(2, 8), 1).requires_grad_()
    m = localization_map(v, a, 0.03, size=224)
    assert m.shape == (2, 224, 224)
    assert torch.allclose(m.flatten(1).min(1).values, torch.zeros(2), atol=1e-6)
    assert torch.allclose(m.flatten(1).max(1).values, torch.ones(2), atol=1e-5)
    # the map's argmax is the feature location most similar to the audio; with align_corners
    # the feature grid's corners land on the map's corners
    with torch.no_grad():
        for (h, w), corner in (((0, 2), (0, 223)), ((2, 0), (223, 0))):
            v2 = v.detach().clone()
            v2[0, :, h, w] = a[0].detach()  # cosine 1: the unique maximum
            m2 = localization_map(v2, a.detach(), 0.03, size=224)
            assert m2[0][corner] == pytest.approx(1.0, abs=1e-5)
            assert int(m2[0].flatten().argmax()) == corner[0] * 224 + corner[1]
    (m[:, :100].sum()).backward()
    assert v.grad.abs().sum() > 0 and a.grad.abs().sum() > 0
    flat = localization_map(torch.zeros(1, 8, 2, 2), unit(torch.ones(1, 8), 1), 0.03, 16)
    assert torch.isfinite(flat).all()  # constant similarity: eps keeps it finite


def test_ezvsl_spectrogram_matches_scipy():
    """EZ-VSL computes ``log(scipy.signal.spectrogram(...) + 1e-7) / 12``; ours agrees except in
    the lowest bins (< 250 Hz), which scipy's per-segment mean removal also changes."""
    signal = pytest.importorskip("scipy.signal")
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(48000))
    audio = audio.astype(np.float32)
    _, _, spec = signal.spectrogram(audio, 16000, nperseg=512, noverlap=274)
    ref = np.log(spec + 1e-7) / 12
    ours = build_audio("resnet18", 8, 8).frontend(torch.tensor(audio)[None])[0, 0].numpy()
    assert ours.shape == ref.shape == (257, 200)
    assert np.abs(ours[8:] - ref[8:]).max() < 1e-3
    assert np.abs(ours - ref).max() < 0.25


@pytest.mark.parametrize("kind,size", [("small", 96), ("small", 64), ("resnet18", 224)])
def test_no_edge_of_the_frame_is_special_to_the_visual_encoder(kind, size):
    """Every stride-2 stage meets the zero padding at both edges (see VisualEncoder): over
    random networks and frames the top and bottom rows (and left and right columns) of the
    trunk's output are alike. Before, a 96 or 224 px frame gave its top row 20% weaker
    activations than its bottom row: an edge a network could learn to light up (the demo's
    maps did, on their top rows)."""
    import torch.nn.functional as F

    rows, cols = torch.zeros(2), torch.zeros(2)
    for seed in range(4 if kind == "resnet18" else 16):  # the statistic varies with the init
        torch.manual_seed(seed)
        enc = build_visual(kind, 16, 16, size).eval()
        x = (torch.rand(8, 3, size, size) - enc.mean) / enc.std
        with torch.no_grad():
            f = enc.trunk(F.pad(x, (0, enc.pad, 0, enc.pad), mode="reflect")).abs().mean((0, 1))
        rows += torch.stack([f[0].mean(), f[-1].mean()])
        cols += torch.stack([f[:, 0].mean(), f[:, -1].mean()])
    for a, b in (rows, cols):  # measured: 1.5-4% now, 15-21% without the padding
        assert abs(a - b) / ((a + b) / 2) < 0.08, (kind, size, float(a), float(b))
    assert enc.pad == (1 - size) % 2 ** (5 if kind == "resnet18" else 3) == 1


@pytest.mark.parametrize("kind,size", [("small", 96), ("resnet18", 224)])
def test_a_constant_frame_gives_a_flat_map(kind, size):
    """No position is special to a network: a uniform frame gives the same similarity at every
    location, for any weights (reflection padding; zero padding made the border a signal that
    trained networks turned into a bright top band). Checked at random init and after the
    weights move (a few optimiser steps on random data)."""
    torch.manual_seed(1)
    net = build_model(ModelConfig(visual=kind, dim=16, width=8, image_size=size), "small")
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for step in range(3):
        for module in net.modules():  # random, trained-looking BN statistics too
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
        net.eval()
        with torch.no_grad():
            v, a = net(torch.full((2, 3, size, size), 0.3 + 0.2 * step), torch.randn(2, 16000))
            s = torch.einsum("ndhw,nd->nhw", v, a).flatten(1)
        assert float((s.max(1).values - s.min(1).values).max()) < 1e-5, step
        net.train()
        v, a = net(torch.rand(4, 3, size, size), torch.randn(4, 16000))
        opt.zero_grad()
        contrastive_loss(v, a, 0.03).backward()
        opt.step()


def test_context_blocks_widen_the_small_trunks_receptive_field():
    """model.context_blocks adds stride-1 blocks at 1/8: the output keeps its shape, and the
    gradient of the centre feature reaches 16 px further each side per block (31 px wide
    without: a 55-65 px object of the varied scenes is then seen in parts only)."""
    def reach(blocks: int) -> tuple[torch.Size, int]:
        torch.manual_seed(0)
        enc = build_visual("small", 16, 8, 96, context_blocks=blocks).eval()
        frames = torch.rand(1, 3, 96, 96, requires_grad=True)
        v = enc(frames)
        v[0, :, v.shape[2] // 2, v.shape[3] // 2].sum().backward()
        cols = (frames.grad.abs().sum((0, 1, 2)) > 0).nonzero().flatten()
        return v.shape, int(cols[-1] - cols[0] + 1)

    (shape0, rf0), (shape2, rf2) = reach(0), reach(2)
    assert shape0 == shape2 == (1, 16, 13, 13)
    assert rf0 == 31 and rf2 == 63, (rf0, rf2)
    with pytest.raises(ValueError, match="context_blocks"):
        build_visual("resnet18", 16, 8, 224, context_blocks=1)
