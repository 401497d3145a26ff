"""Whisper's log-mel front end computed directly on 8 kHz telephone audio (numpy).

Whisper reads 80 mel bands of 16 kHz audio (25 ms Hann window, 10 ms hop, Slaney mel scale and area norm,
log10 clamped 8 decades under the input's maximum, then (x + 4) / 4). Telephone audio has nothing above 4 kHz, so
the same time-frequency grid is computed at 8 kHz: a 200-point DFT every 80 samples gives the 16 kHz DFT's first
101 bins (0-4000 Hz in 40 Hz steps); their power is 4 times smaller (half the samples under the window), which
`POWER_SCALE_8K` restores, and the mel bands above 4 kHz receive nothing (they sit at the clamp floor, as they would
for an upsampled telephone signal). 2 s of audio -> 200 frames -> 100 encoder positions.
"""

from __future__ import annotations

import numpy as np

WHISPER_RATE_HZ = 16000
WHISPER_N_FFT = 400                 # 25 ms at 16 kHz
N_MELS = 80
RATE_HZ = 8000                      # what the workers score
N_FFT = 200                         # 25 ms at 8 kHz: the same 40 Hz bin spacing as Whisper's
HOP = 80                            # 10 ms at 8 kHz
POWER_SCALE_8K = 4.0                # |DFT|^2 of n samples grows as n^2 for a tone, n for noise twice as dense
LOG_FLOOR = 1e-10
DYNAMIC_RANGE_DECADES = 8.0


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, np.float64)
    linear = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, linear)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def whisper_mel_filters(sr: int = WHISPER_RATE_HZ, n_fft: int = WHISPER_N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters on the Slaney mel scale from 0 Hz to sr / 2, each scaled to
    unit area (2 / bandwidth): the filterbank Whisper was trained with."""
    bins = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(0.0), _hz_to_mel_slaney(sr / 2), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    fb = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return fb.astype(np.float32)


def mel_filters_8k() -> np.ndarray:
    """[80, 101]: Whisper's filterbank restricted to the bins an 8 kHz signal has."""
    return whisper_mel_filters()[:, : N_FFT // 2 + 1]


def dft_matrices() -> tuple[np.ndarray, np.ndarray]:
    """([N_FFT, 101] cos, [N_FFT, 101] sin) kernels with the periodic Hann window folded in."""
    n = np.arange(N_FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)
    k = np.arange(N_FFT // 2 + 1)
    angle = 2 * np.pi * np.outer(n, k) / N_FFT
    return (np.cos(angle) * window[:, None]).astype(np.float32), (-np.sin(angle) * window[:, None]).astype(np.float32)


_FILTERS = mel_filters_8k()
_COS, _SIN = dft_matrices()


def n_frames(samples: int) -> int:
    """Mel frames for ``samples`` of 8 kHz audio (centred STFT, last frame dropped, as Whisper does)."""
    return samples // HOP


def log_mel(audio: np.ndarray) -> np.ndarray:
    """[batch, samples] float32 at 8 kHz -> [batch, 80, samples // 80] Whisper-normalised log-mels."""
    x = np.atleast_2d(np.asarray(audio, np.float32))
    pad = N_FFT // 2
    x = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    frames = n_frames(x.shape[1] - 2 * pad)
    idx = np.arange(frames)[:, None] * HOP + np.arange(N_FFT)[None, :]
    seg = x[:, idx]                                                  # [batch, frames, N_FFT]
    power = ((seg @ _COS) ** 2 + (seg @ _SIN) ** 2) * POWER_SCALE_8K   # [batch, frames, 101]
    mel = np.log10(np.maximum(power @ _FILTERS.T, LOG_FLOOR))        # [batch, frames, 80]
    mel = np.maximum(mel, mel.max(axis=(1, 2), keepdims=True) - DYNAMIC_RANGE_DECADES)
    return ((mel + 4.0) / 4.0).transpose(0, 2, 1).astype(np.float32)
