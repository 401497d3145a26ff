"""The front-end's DSP constants, named once with their units, and its filterbank and DFT kernels (numpy). No torch
here: the data, augmentation and scoring code read these too, and they run where only the workers' packages are
installed. `frontend.LogMel` turns them into the torch module exported inside the ONNX graphs."""

from __future__ import annotations

import math

import numpy as np

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
