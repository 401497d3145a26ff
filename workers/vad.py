"""Energy voice-activity detection with an adaptive noise floor, one small state object per leg.

Telephone legs carry comfort noise, line hum and level changes, so a fixed threshold fails; the floor
tracks the quiet end of the frame-level distribution, drops at once and rises slowly, and speech is what
stands clearly above it. A hangover keeps word-internal pauses inside one talk spurt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

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
_TAIL_SHIFTS = np.arange(HANGOVER_FRAMES - 1, -1, -1)   # bit i of a tail: the decision HANGOVER_FRAMES - i frames ago


def frame_dbfs(samples: np.ndarray) -> np.ndarray:
    """[n * FRAME_SAMPLES] -> [n] RMS level per 20 ms frame, dBFS (full-scale sine = -3 dBFS)."""
    frames = samples[: len(samples) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    power = np.einsum("ij,ij->i", frames, frames) / FRAME_SAMPLES
    return 10.0 * np.log10(power + POWER_EPS)


def speech_masks(states: Sequence["VadState"], steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step of several legs at once: ``steps`` [legs, samples] -> (bool masks [legs, frames], dBFS [legs, frames]).
    Each state advances exactly as it would alone: a batch of legs costs a handful of numpy calls, not a handful
    per leg."""
    legs = len(states)
    n_frames = steps.shape[1] // FRAME_SAMPLES
    db = frame_dbfs(steps[:, : n_frames * FRAME_SAMPLES].reshape(-1)).reshape(legs, n_frames)
    if n_frames == 0:
        return np.zeros((legs, 0), dtype=bool), db
    k = n_frames // 10
    quiet = np.partition(db, k, axis=1)[:, k]                  # ~10th percentile per leg
    floors = np.minimum(np.array([s.floor_dbfs for s in states]) + FLOOR_RISE_DB_PER_STEP, quiet)
    # compared in float32, as a Python float threshold against the float32 levels always was
    raw = (db > (floors + SPEECH_ABOVE_FLOOR_DB).astype(np.float32)[:, None]) & (db > MIN_SPEECH_DBFS)
    prev = (np.array([s.tail for s in states], dtype=np.int64)[:, None] >> _TAIL_SHIFTS) & 1
    padded = np.concatenate([prev.astype(np.int8), raw.astype(np.int8)], axis=1)
    # Hangover: a frame is speech if it or any of the HANGOVER_FRAMES frames before it (across steps) was.
    run = np.zeros((legs, padded.shape[1] + 1), np.int32)
    np.cumsum(padded, axis=1, out=run[:, 1:])
    masks = run[:, HANGOVER_FRAMES + 1: HANGOVER_FRAMES + 1 + n_frames] - run[:, :n_frames] > 0
    tails = (padded[:, -HANGOVER_FRAMES:].astype(np.int64) << _TAIL_SHIFTS).sum(axis=1)
    for state, floor, tail in zip(states, floors.tolist(), tails.tolist()):
        state.floor_dbfs, state.tail = floor, tail
    return masks, db


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
        masks, db = speech_masks([self], samples[None, :])
        return masks[0], db[0]

    def to_dict(self) -> dict:
        return {"floor": self.floor_dbfs, "tail": self.tail}

    @classmethod
    def from_dict(cls, d: dict) -> "VadState":
        return cls(float(d.get("floor", INITIAL_FLOOR_DBFS)), int(d.get("tail", 0)))
