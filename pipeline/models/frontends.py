"""Audio front-ends: waveform (B, T) at 16 kHz -> the encoder's input, without parameters.

They are separate from the encoders so the strong augmentation can mask the front-end output
(SpecAugment) between the two. Each front-end says which axes of its output are time and
frequency (``time_axis``, ``freq_axis``; absolute dims, ``freq_axis`` None for a waveform).
Any T is accepted: inputs shorter than one analysis window are zero-padded on the right.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio.transforms as T
from torch import nn


def pad_to(wave: torch.Tensor, length: int) -> torch.Tensor:
    """Right-pad (B, T) with zeros to at least ``length`` samples."""
    return F.pad(wave, (0, length - wave.shape[-1])) if wave.shape[-1] < length else wave


def tukey_window(n: int, alpha: float = 0.25, **_: object) -> torch.Tensor:
    """Periodic Tukey window of length ``n`` (scipy.signal.spectrogram's default window)."""
    m = n + 1  # periodic = symmetric window of n + 1 points without its last point
    x = torch.arange(m, dtype=torch.float64) / (m - 1)
    w = torch.ones(m, dtype=torch.float64)
    left, right = x < alpha / 2, x >= 1 - alpha / 2
    w[left] = 0.5 * (1 + torch.cos(2 * math.pi / alpha * (x[left] - alpha / 2)))
    w[right] = 0.5 * (1 + torch.cos(2 * math.pi / alpha * (x[right] - 1 + alpha / 2)))
    return w[:n].float()


class EZVSLSpectrogram(nn.Module):
    """EZ-VSL's input: ``log(STFT power density + 1e-7) / 12`` -> (B, 1, 257, frames).

    512-sample window, 274-sample overlap (hop 238), no centring, Tukey(0.25) window and scipy's
    one-sided density scaling, so the 1e-7 floor sits where it does in EZ-VSL's scipy code; the
    /12 is their ``Normalize(mean=0, std=12)``. scipy's per-segment mean removal is omitted: it
    only changes bins below ~250 Hz (by < 0.2 after the /12). 48000 samples give 200 frames.
    """

    time_axis, freq_axis = 3, 2
    n_fft = 512

    def __init__(self, sample_rate: int = 16000):
        super().__init__()
        self.spec = T.Spectrogram(n_fft=self.n_fft, hop_length=512 - 274, window_fn=tukey_window,
                                  power=2.0, center=False)
        win = tukey_window(self.n_fft)
        scale = torch.full((self.n_fft // 2 + 1, 1), 2.0 / (sample_rate * float((win**2).sum())))
        scale[0] /= 2  # DC and Nyquist are not doubled in a one-sided density
        scale[-1] /= 2
        self.register_buffer("scale", scale, persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        power = self.spec(pad_to(wave, self.n_fft)) * self.scale
        return (torch.log(power + 1e-7) / 12.0).unsqueeze(1)


class LogMel(nn.Module):
    """Log-mel spectrogram -> (B, 1, n_mels, frames), or (B, 1, frames, n_mels) if time_first.

    25 ms Hann window (400 samples, FFT 512), 10 ms hop, no centring. ``vggish()`` gives VGGish's
    settings (64 bins 125-7500 Hz, magnitude, log(x + 0.01), time first as its 96x64 patches);
    the default is the small encoder's (64 bins, power, log(x + 1e-6)).
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 64, power: float = 2.0,
                 offset: float = 1e-6, f_min: float = 0.0, f_max: float | None = None,
                 time_first: bool = False):
        super().__init__()
        self.mel = T.MelSpectrogram(sample_rate=sample_rate, n_fft=512, win_length=400,
                                    hop_length=160, f_min=f_min, f_max=f_max, n_mels=n_mels,
                                    power=power, center=False, mel_scale="htk")
        self.offset = offset
        self.time_first = time_first
        self.time_axis, self.freq_axis = (2, 3) if time_first else (3, 2)

    @classmethod
    def vggish(cls, sample_rate: int = 16000) -> LogMel:
        return cls(sample_rate, n_mels=64, power=1.0, offset=0.01, f_min=125.0, f_max=7500.0,
                   time_first=True)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = torch.log(self.mel(pad_to(wave, 512)) + self.offset).unsqueeze(1)
        return x.transpose(2, 3) if self.time_first else x


class Waveform(nn.Module):
    """SoundNet's input: the raw waveform (B, T) -> (B, 1, T') times ``scale`` (the original
    SoundNet reads samples in [-256, 256]), padded to ``min_length``."""

    time_axis, freq_axis = 2, None

    def __init__(self, min_length: int, scale: float = 1.0):
        super().__init__()
        self.min_length, self.scale = min_length, scale

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return (pad_to(wave, self.min_length) * self.scale).unsqueeze(1)
