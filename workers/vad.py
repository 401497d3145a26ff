"""Energy voice-activity detection with an adaptive noise floor, one small state object per leg.

Telephone legs carry comfort noise, line hum and level changes, so a fixed threshold fails; the floor
tracks the quiet end of the frame-level distribution, drops at once and rises slowly, and speech is what
stands clearly above it. A hangover keeps word-internal pauses inside one talk spurt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import ANALYSIS_RATE_HZ

FRAME_S = 0.02
FRAME_SAMPLES = int(FRAME_S * ANALYSIS_RATE_HZ)  # 160
SPEECH_ABOVE_FLOOR_DB = 10.0  # a frame is speech when this far above the noise floor...
MIN_SPEECH_DBFS = -50.0       # ...and above this absolute level
INITIAL_FLOOR_DBFS = -60.0
FLOOR_RISE_DB_PER_STEP = 1.5  # slow rise: a long monologue must not become the floor
HANGOVER_FRAMES = 8           # 160 ms
POWER_EPS = 1e-10


def frame_dbfs(samples: np.ndarray) -> np.ndarray:
    """[n * FRAME_SAMPLES] -> [n] RMS level per 20 ms frame, dBFS (full-scale sine = -3 dBFS)."""
    frames = samples[: len(samples) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    power = np.einsum("ij,ij->i", frames, frames) / FRAME_SAMPLES
    return 10.0 * np.log10(power + POWER_EPS)


def speech_share(mask: np.ndarray) -> float:
    """Share of speech frames in a mask: ``mask.mean()`` (the same value), without numpy's float reduction."""
    return np.count_nonzero(mask) / mask.size if mask.size else float("nan")


@dataclass
class VadState:
    floor_dbfs: float = INITIAL_FLOOR_DBFS
    tail: int = 0  # raw decisions of the last HANGOVER_FRAMES frames of the previous step, as bits

    def reset(self) -> None:
        self.floor_dbfs = INITIAL_FLOOR_DBFS
        self.tail = 0

    def speech_mask(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Classify one step of audio. Returns (bool mask [frames], level dBFS [frames])."""
        db = frame_dbfs(samples)
        if db.size == 0:
            return np.zeros(0, dtype=bool), db
        quiet = float(np.partition(db, db.size // 10)[db.size // 10])   # ~10th percentile, without np.percentile's overhead
        self.floor_dbfs = min(self.floor_dbfs + FLOOR_RISE_DB_PER_STEP, quiet)
        raw = (db > self.floor_dbfs + SPEECH_ABOVE_FLOOR_DB) & (db > MIN_SPEECH_DBFS)
        prev = (self.tail >> np.arange(HANGOVER_FRAMES - 1, -1, -1)) & 1
        padded = np.concatenate([prev.astype(np.int8), raw.astype(np.int8)])
        # Hangover: a frame is speech if it or any of the HANGOVER_FRAMES frames before it (across steps) was.
        counts = np.convolve(padded, np.ones(HANGOVER_FRAMES + 1, np.int8), mode="full")
        mask = counts[HANGOVER_FRAMES: HANGOVER_FRAMES + raw.size] > 0
        bits = padded[-HANGOVER_FRAMES:]
        self.tail = int((bits.astype(np.int64) << np.arange(HANGOVER_FRAMES - 1, -1, -1)).sum())
        return mask, db

    def to_dict(self) -> dict:
        return {"floor": self.floor_dbfs, "tail": self.tail}

    @classmethod
    def from_dict(cls, d: dict) -> "VadState":
        return cls(float(d.get("floor", INITIAL_FLOOR_DBFS)), int(d.get("tail", 0)))
