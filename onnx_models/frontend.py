"""The log-mel front-end, in torch, exported inside the ONNX graphs (waveform in), so training and serving
compute identical features. DSP constants are named once, with their units."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

SAMPLE_RATE_HZ = 8000
N_FFT = 256              # 32 ms analysis window: resolves pitch harmonics of most voices
HOP = 160                # 20 ms between frames
N_MELS = 40
F_MIN_HZ = 60.0
F_MAX_HZ = 3900.0        # just under Nyquist of telephone audio
LOG_FLOOR = 1e-6
WINDOW_S = 2.0           # the window the workers score


def hz_to_mel(f: np.ndarray | float) -> np.ndarray | float:
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray | float:
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int = N_FFT, n_mels: int = N_MELS, sr: int = SAMPLE_RATE_HZ, fmin: float = F_MIN_HZ, fmax: float = F_MAX_HZ) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters, HTK mel scale, area-normalised (Slaney)."""
    bins = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(bins)), np.float64)
    for i in range(n_mels):
        lo, c, hi = edges[i], edges[i + 1], edges[i + 2]
        fb[i] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
        fb[i] *= 2.0 / (hi - lo)
    return fb.astype(np.float32)


def dft_basis(n_fft: int = N_FFT) -> np.ndarray:
    """[2 * (n_fft // 2 + 1), 1, n_fft] Hann-windowed cos and sin kernels: an STFT as one strided conv1d."""
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * math.pi * n / n_fft)
    cos = np.cos(2 * math.pi * k * n / n_fft) * window
    sin = -np.sin(2 * math.pi * k * n / n_fft) * window
    return np.concatenate([cos, sin])[:, None, :].astype(np.float32)


class LogMel(nn.Module):
    """[batch, samples] in [-1, 1] -> [batch, N_MELS, frames] log-mel, normalised per window and band
    (mean and variance over time), which removes most of the channel: microphone, codec, line level."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("basis", torch.from_numpy(dft_basis()))
        self.register_buffer("mel", torch.from_numpy(mel_filterbank()))
        self.n_bins = N_FFT // 2 + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = nn.functional.conv1d(wave.unsqueeze(1), self.basis, stride=HOP)      # [B, 2*bins, frames]
        power = spec[:, : self.n_bins] ** 2 + spec[:, self.n_bins:] ** 2
        logmel = torch.log(torch.matmul(self.mel, power) + LOG_FLOOR)              # [B, mels, frames]
        mean = logmel.mean(dim=2, keepdim=True)
        std = ((logmel - mean) ** 2).mean(dim=2, keepdim=True).add(1e-5).sqrt()
        return (logmel - mean) / std


def frames_for(samples: int) -> int:
    return (samples - N_FFT) // HOP + 1
