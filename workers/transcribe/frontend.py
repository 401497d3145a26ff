"""Whisper's log-mel front end in numpy (no torch, no librosa), and 8 kHz -> 16 kHz for telephone legs.

Matches openai/whisper's ``log_mel_spectrogram``: 25 ms Hann window (400 samples), 10 ms hop (160), 80 Slaney
mel bands over 0..8 kHz, log10 clamped at 8 decades below the maximum, then scaled to about [-1, 1].
"""

from __future__ import annotations

import numpy as np

from workers.audio import _HALFBAND

WHISPER_RATE_HZ = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80
LOG_FLOOR = 1e-10
DYNAMIC_RANGE_DECADES = 8.0


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def mel_filters(sr: int = WHISPER_RATE_HZ, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters, Slaney-normalised (area), as librosa.filters.mel(htk=False)."""
    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_pts = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_pts[2:n_mels + 2] - mel_pts[:n_mels]))[:, None]
    return weights.astype(np.float32)


_MEL = mel_filters()
_WINDOW = np.hanning(N_FFT + 1)[:-1].astype(np.float32)   # periodic Hann, as torch.hann_window


def log_mel(audio: np.ndarray, pad_to_frames: int | None = None) -> np.ndarray:
    """float32 mono at 16 kHz [samples] -> [N_MELS, frames] Whisper features.

    ``pad_to_frames`` pads the waveform with zeros first (Whisper was trained on 30 s = 3000 frames)."""
    x = np.asarray(audio, dtype=np.float32)
    if pad_to_frames is not None and len(x) < pad_to_frames * HOP:
        x = np.concatenate([x, np.zeros(pad_to_frames * HOP - len(x), np.float32)])
    x = np.pad(x, N_FFT // 2, mode="reflect")
    n_frames = 1 + (len(x) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * _WINDOW, axis=1)) ** 2          # [frames, bins]
    mel = _MEL @ spec[:-1].T                                             # whisper drops the last frame
    logm = np.log10(np.maximum(mel, LOG_FLOOR))
    logm = np.maximum(logm, logm.max() - DYNAMIC_RANGE_DECADES)
    return ((logm + 4.0) / 4.0).astype(np.float32)


def upsample_8k_to_16k(samples: np.ndarray) -> np.ndarray:
    """Telephone-band leg audio (8 kHz, the workers' analysis rate) -> 16 kHz: zero-stuff and low-pass with the
    same half-band filter the workers decimate with (gain 2 restores the level)."""
    up = np.zeros(2 * len(samples), np.float32)
    up[::2] = samples
    return (2.0 * np.convolve(up, _HALFBAND, mode="same")).astype(np.float32)
