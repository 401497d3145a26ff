"""Decoding chunks to float32 at the analysis rate, and G.711 companding, vectorised with numpy.

Everything downstream (VAD, windows, models) works on mono float32 in [-1, 1] at ``ANALYSIS_RATE_HZ``.
"""

from __future__ import annotations

import numpy as np

ANALYSIS_RATE_HZ = 8000  # telephone band: 16 kHz input is decimated, 8 kHz passes through


def _mulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.uint8)
    sign = (codes & 0x80) != 0
    exponent = ((codes >> 4) & 0x07).astype(np.int32)
    mantissa = (codes & 0x0F).astype(np.int32)
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return (np.where(sign, -magnitude, magnitude) / 32768.0).astype(np.float32)


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.uint8) ^ 0x55
    sign = (codes & 0x80) != 0
    exponent = ((codes >> 4) & 0x07).astype(np.int32)
    mantissa = (codes & 0x0F).astype(np.int32)
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    # A-law: the sign bit set means positive.
    return (np.where(sign, magnitude, -magnitude) / 32768.0).astype(np.float32)


MULAW_TO_FLOAT = _mulaw_table()
ALAW_TO_FLOAT = _alaw_table()
PCM16_SCALE = 32768.0
# G.711 decodes to whole 16-bit values: the same tables as int16, exactly (the float tables are these / 2**15)
MULAW_TO_PCM16 = (MULAW_TO_FLOAT * PCM16_SCALE).astype(np.int16)
ALAW_TO_PCM16 = (ALAW_TO_FLOAT * PCM16_SCALE).astype(np.int16)
G711_TO_FLOAT = {"mulaw": MULAW_TO_FLOAT, "alaw": ALAW_TO_FLOAT}

# Half-band low-pass FIR for 16 kHz -> 8 kHz (windowed sinc, cut-off 3.8 kHz at 16 kHz, 31 taps).
_TAPS = 31
_n = np.arange(_TAPS) - (_TAPS - 1) / 2
_HALFBAND = (np.sinc(2 * 3800 / 16000 * _n) * np.hamming(_TAPS)).astype(np.float32)
_HALFBAND /= _HALFBAND.sum()


def decode_payload(payload: bytes, encoding: str) -> np.ndarray:
    """Bytes of one encoding -> float32 samples in [-1, 1]."""
    raw = np.frombuffer(payload, dtype=np.uint8 if encoding != "pcm_s16le" else "<i2")
    if encoding == "pcm_s16le":
        return raw.astype(np.float32) * (1.0 / 32768.0)
    if encoding == "mulaw":
        return MULAW_TO_FLOAT[raw]
    if encoding == "alaw":
        return ALAW_TO_FLOAT[raw]
    raise ValueError(f"encoding must be pcm_s16le, mulaw or alaw, got {encoding!r}")


def decode_to_pcm16(payload: bytes, encoding: str, sample_rate: int) -> np.ndarray:
    """One chunk's payload -> int16 samples at ``ANALYSIS_RATE_HZ``, what the leg buffers hold. At 8 kHz this is
    one table look-up (G.711) or a view of the bytes (PCM): no float round trip; equal, sample for sample, to
    ``to_analysis_rate(decode_payload(...))`` scaled by 2**15 and clipped to int16."""
    if sample_rate == ANALYSIS_RATE_HZ:
        if encoding == "mulaw":
            return MULAW_TO_PCM16.take(np.frombuffer(payload, np.uint8))
        if encoding == "alaw":
            return ALAW_TO_PCM16.take(np.frombuffer(payload, np.uint8))
        if encoding == "pcm_s16le":
            return np.frombuffer(payload, "<i2")
    return to_pcm16(to_analysis_rate(decode_payload(payload, encoding), sample_rate))


def buffered_samples(payload: bytes, encoding: str, sample_rate: int) -> tuple[np.ndarray, np.ndarray | None]:
    """What a leg buffer holds for one chunk at ``ANALYSIS_RATE_HZ``, and the table that decodes it: 8 kHz G.711 stays
    as its one-byte codes (a view of the payload; half the memory of int16, decoded when a step or window is read),
    anything else becomes int16 (table None)."""
    if sample_rate == ANALYSIS_RATE_HZ and encoding in G711_TO_FLOAT:
        return np.frombuffer(payload, np.uint8), G711_TO_FLOAT[encoding]
    return decode_to_pcm16(payload, encoding, sample_rate), None


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """float32 in [-1, 1] -> int16 (clipped)."""
    return np.clip(samples * PCM16_SCALE, -32768, 32767).astype(np.int16)


def to_analysis_rate(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample one chunk to ``ANALYSIS_RATE_HZ``. 16 kHz chunks are low-passed then decimated by 2.

    Filtering each chunk on its own (no state across chunks) costs a few samples of edge error per chunk
    boundary, far below what the VAD and models can notice, and keeps chunks independent of arrival order.
    """
    if sample_rate == ANALYSIS_RATE_HZ:
        return samples
    if sample_rate == 2 * ANALYSIS_RATE_HZ:
        filtered = np.convolve(samples, _HALFBAND, mode="same")
        return filtered[::2].astype(np.float32, copy=False)
    raise ValueError(f"expected 8000 or 16000 Hz, got {sample_rate}")


def encode_mulaw(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] -> G.711 u-law bytes (used by replay and tests)."""
    x = np.clip(np.asarray(samples, dtype=np.float64) * 32768.0, -32635, 32635).astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    x = np.abs(x) + 0x84
    exponent = np.floor(np.log2(np.maximum(x, 1))).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (x >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


def encode_alaw(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] -> G.711 A-law bytes."""
    x = np.clip(np.asarray(samples, dtype=np.float64) * 32768.0, -32767, 32767).astype(np.int32)
    sign = np.where(x >= 0, 0x80, 0)
    x = np.abs(x) >> 3
    exponent = np.where(x >= 32, np.floor(np.log2(np.maximum(x, 1))).astype(np.int32) - 4, 0)
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, x >> 1, x >> exponent) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8).tobytes()


def encode_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype("<i2").tobytes()
