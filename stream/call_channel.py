"""Telephone impairments for built calls: level, background noise, packet loss, and the G.711 codec.

Applied to the two 8 kHz legs after ``sample_calls.render``; the codec is applied when the WAV is written
(``CODECS`` gives the soundfile subtype). Every draw comes from the caller's generator, so a build is
deterministic for its seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import butter, sosfilt

from .sample_calls import BAND_HZ, SPEECH_LEVEL_DBFS, SR_OUT_HZ

CODECS = {"mulaw": "ULAW", "alaw": "ALAW"}
PACKET_S = 0.02                     # one RTP packet of G.711 audio
LOSS_BURST_PACKETS = 2.5            # mean length of a loss burst (Gilbert-Elliott)
NOISE_P = 0.35                      # share of calls with background noise on the customer leg
NOISE_SNR_DB = (10.0, 25.0)
LOSS_P = 0.3                        # share of calls with packet loss on both legs
LOSS_RATE = (0.01, 0.05)
CUSTOMER_GAIN_DB = (-4.0, 4.0)      # customers are louder or quieter than the nominal level


@dataclass(frozen=True)
class Impairments:
    codec: str = "mulaw"
    customer_gain_db: float = 0.0
    noise_snr_db: float | None = None     # customer leg, relative to its speech level
    packet_loss: float = 0.0              # share of 20 ms packets lost, per leg

    def to_dict(self) -> dict:
        return asdict(self)


def draw_impairments(rng: np.random.Generator) -> Impairments:
    codec = "alaw" if rng.random() < 0.5 else "mulaw"
    gain = round(float(rng.uniform(*CUSTOMER_GAIN_DB)), 1)
    snr = round(float(rng.uniform(*NOISE_SNR_DB)), 1) if rng.random() < NOISE_P else None
    loss = round(float(rng.uniform(*LOSS_RATE)), 3) if rng.random() < LOSS_P else 0.0
    return Impairments(codec, gain, snr, loss)


def loss_mask(n_packets: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """True for lost packets: a two-state (Gilbert-Elliott) chain with the given long-run loss rate."""
    lost = np.zeros(n_packets, bool)
    if rate <= 0:
        return lost
    leave_bad = 1.0 / LOSS_BURST_PACKETS
    enter_bad = rate * leave_bad / (1.0 - rate)
    u = rng.random(n_packets)
    bad = False
    for i in range(n_packets):
        bad = u[i] >= leave_bad if bad else u[i] < enter_bad
        lost[i] = bad
    return lost


def apply_impairments(audio: np.ndarray, imp: Impairments, rng: np.random.Generator) -> np.ndarray:
    """``audio``: float32 [samples, 2] (agent, customer) at 8 kHz; returns the impaired copy, clipped to [-1, 1]."""
    out = audio.astype(np.float64).copy()
    out[:, 1] *= 10 ** (imp.customer_gain_db / 20)
    if imp.noise_snr_db is not None:
        speech_rms = 10 ** ((SPEECH_LEVEL_DBFS["customer"] + imp.customer_gain_db) / 20)
        band = butter(4, BAND_HZ, btype="bandpass", fs=SR_OUT_HZ, output="sos")
        noise = sosfilt(band, rng.normal(0, 1, len(out)))
        out[:, 1] += noise * speech_rms / (np.sqrt((noise ** 2).mean()) * 10 ** (imp.noise_snr_db / 20))
    if imp.packet_loss > 0:
        n = int(PACKET_S * SR_OUT_HZ)
        for leg in range(2):
            lost = loss_mask(len(out) // n + 1, imp.packet_loss, rng)
            out[:, leg] *= ~np.repeat(lost, n)[: len(out)]
    return np.clip(out, -1, 1).astype(np.float32)
