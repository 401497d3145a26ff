"""Telephone-channel augmentation (numpy/scipy): what happens to a voice between a customer's mouth and a
call-centre worker. Applied at random in training; `telephone_band` is the fixed test-time channel."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, resample, sosfilt

from workers.audio import ALAW_TO_FLOAT, MULAW_TO_FLOAT, encode_alaw, encode_mulaw

from .dsp import SAMPLE_RATE_HZ

BAND_LOW_HZ, BAND_HIGH_HZ = 300.0, 3400.0
_BANDPASS = butter(4, [BAND_LOW_HZ, BAND_HIGH_HZ], btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")
SNR_DB = (5.0, 30.0)
GAIN_DB = (-18.0, 6.0)
LOSS_BURST_S = (0.02, 0.08)     # 1-4 packets of 20 ms
REVERB_RT60_S = (0.15, 0.6)


def companding(x: np.ndarray, law: str) -> np.ndarray:
    """G.711 round trip (u-law or A-law)."""
    if law == "mulaw":
        return MULAW_TO_FLOAT[np.frombuffer(encode_mulaw(x), np.uint8)]
    return ALAW_TO_FLOAT[np.frombuffer(encode_alaw(x), np.uint8)]


def telephone_band(x: np.ndarray, law: str = "mulaw") -> np.ndarray:
    """The deterministic test channel: 300-3400 Hz band-pass, then G.711."""
    return companding(sosfilt(_BANDPASS, x).astype(np.float32), law)


def _reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60 = rng.uniform(*REVERB_RT60_S)
    n = int(rt60 * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    ir = rng.normal(0, 1, n) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0 / rng.uniform(0.3, 1.0)
    wet = fftconvolve(x, ir / np.sqrt((ir ** 2).sum()), mode="full")[: len(x)]
    return wet.astype(np.float32)


def _noise(n: int, rng: np.random.Generator, others: list[np.ndarray] | None) -> np.ndarray:
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.normal(0, 1, n).astype(np.float32)
    if kind == 1:   # pink-ish: integrated white, high-passed
        pink = np.cumsum(rng.normal(0, 1, n))
        pink -= np.convolve(pink, np.ones(64) / 64, mode="same")
        return pink.astype(np.float32)
    if others:      # babble: other speakers in the background
        out = np.zeros(n, np.float32)
        for _ in range(3):
            o = others[int(rng.integers(0, len(others)))]
            if len(o) >= n:
                s = int(rng.integers(0, len(o) - n + 1))
                out += o[s:s + n]
        return out
    return rng.normal(0, 1, n).astype(np.float32)


def random_channel(x: np.ndarray, rng: np.random.Generator, others: list[np.ndarray] | None = None, p_phone: float = 0.7) -> np.ndarray:
    """Reverb, background noise, gain, band-limiting, G.711 and packet loss, each at random."""
    y = x.astype(np.float32, copy=True)
    if rng.random() < 0.3:
        y = _reverb(y, rng)
    if rng.random() < 0.5:
        noise = _noise(len(y), rng, others)
        p_sig, p_noise = float((y ** 2).mean()) + 1e-10, float((noise ** 2).mean()) + 1e-10
        snr = rng.uniform(*SNR_DB)
        y = y + noise * np.sqrt(p_sig / (p_noise * 10 ** (snr / 10)))
    peak = float(np.abs(y).max()) + 1e-9
    y = y / peak * 10 ** (rng.uniform(*GAIN_DB) / 20) * 0.5
    if rng.random() < p_phone:
        y = telephone_band(np.clip(y, -1, 1), "mulaw" if rng.random() < 0.5 else "alaw")
    if rng.random() < 0.3:
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.uniform(*LOSS_BURST_S) * SAMPLE_RATE_HZ)
            s = int(rng.integers(0, max(1, len(y) - n)))
            y[s:s + n] = 0.0
    return np.clip(y, -1, 1).astype(np.float32)


def change_speed(x: np.ndarray, samples: int) -> np.ndarray:
    """Band-limited resampling of ``x`` to ``samples`` samples, played at the same rate: a crop of 1.1 windows
    squeezed into one window is the speaker 10 % faster and higher (Kaldi-style speed perturbation)."""
    return resample(x.astype(np.float64), samples).astype(np.float32)
