"""The soundtrack of a clip: the sounding categories' tones over coloured background noise.

Each category's sound (see categories.py) is a harmonic tone with its own pitch, partials and
rhythm; per clip the pitch is jittered by up to 3% (categories are ~26% apart) and the rhythm
starts at a random phase, so no two clips of a category are sample-identical. The envelope never
reaches zero and the noise is added on top, so no clip is ever silent.
"""

from __future__ import annotations

import numpy as np

from pipeline.config import SynthConfig
from pipeline.synth.categories import Category, categories_of
from pipeline.synth.scene import STREAM_AUDIO, Scene, clip_rng
from pipeline.synth.varied import varied_sound

TARGET_RMS = 0.12  # loudness of the final mix (about -18 dBFS)
PEAK = 0.95  # the mix is scaled down if a peak would exceed this (AAC must not clip)
VIBRATO_HZ = 5.0
EDGE_SECONDS = 0.005  # smoothing of gated envelopes: no clicks at the gate edges


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    return np.convolve(x, np.ones(width) / width, mode="same")


def envelope(cat: Category, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """The category's rhythm as an amplitude envelope in [floor, 1] (floor > 0)."""
    t = np.arange(n) / sr
    cycle = (cat.rate * t + rng.random()) % 1.0  # position within the current beat
    if cat.rhythm == "tremolo":
        return 0.65 + 0.35 * np.sin(2 * np.pi * cycle)
    if cat.rhythm == "pulse":
        gate = _smooth((cycle < 0.5).astype(np.float64), int(EDGE_SECONDS * sr))
        return 0.15 + 0.85 * gate
    if cat.rhythm == "pluck":
        strikes = _smooth(np.exp(-cycle / 0.25), int(EDGE_SECONDS * sr))
        return 0.1 + 0.9 * strikes
    raise ValueError(f"unknown rhythm {cat.rhythm!r}")


def category_sound(cat: Category, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of the category's sound at ``sr`` Hz, unit RMS."""
    t = np.arange(n) / sr
    f0 = cat.f0 * rng.uniform(0.97, 1.03)
    freq = f0 * (1 + cat.vibrato * np.sin(2 * np.pi * VIBRATO_HZ * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    step = 2 if cat.odd_only else 1
    tone = np.zeros(n)
    for k in range(1, 1 + step * (cat.harmonics + 1), step):
        if k * f0 * (1 + cat.vibrato) >= 0.45 * sr:  # keep every partial below Nyquist
            break
        tone += k ** -cat.rolloff * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    sound = tone * envelope(cat, n, sr, rng)
    return sound / np.sqrt(np.mean(sound ** 2))


def background_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a random spectral slope between white and brown (1/f^0..1/f^2)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    spectrum /= np.maximum(freqs, 20.0) ** rng.uniform(0.0, 1.0)  # amplitude slope: power 0..2
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise ** 2))


def clip_audio(cfg: SynthConfig, scene: Scene) -> np.ndarray:
    """The mono soundtrack of ``scene``: ``round(duration * sample_rate)`` float32 samples."""
    rng = clip_rng(cfg, STREAM_AUDIO, scene.index)
    cats = categories_of(cfg)
    n, sr = round(cfg.duration * cfg.sample_rate), cfg.sample_rate
    if cfg.version == 2:  # the heard categories: the sounders', or the off-screen one
        sound = sum(varied_sound(cats[k], n, sr, rng, cfg.pitch_spread) for k in scene.heard)
    else:
        sound = sum(category_sound(cats[o.category], n, sr, rng) for o in scene.sounders)
    sound_rms = np.sqrt(np.mean(sound ** 2))
    mix = sound + cfg.noise_level * sound_rms * background_noise(n, sr, rng)
    mix *= TARGET_RMS * rng.uniform(0.7, 1.4) / np.sqrt(np.mean(mix ** 2))
    peak = np.abs(mix).max()
    if peak > PEAK:
        mix *= PEAK / peak
    return mix.astype(np.float32)
