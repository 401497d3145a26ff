"""Call-level conversation metrics from the two legs' 20 ms speech masks, one 1 s step at a time.

Definitions (also in the README):
- *non-talk (silence)*: frames where neither leg speaks. ``silence_run`` is the current run of such frames;
  ``longest_silence`` the longest run so far.
- *overtalk*: frames where both legs speak.
- *turn*: a talk spurt of one leg that starts after at least ``TURN_GAP_S`` of that leg not speaking.
- *interruption by X*: X starts a turn while the other leg Y has already been speaking for at least
  ``INTERRUPTED_AFTER_S``, and both keep speaking together for at least ``MIN_OVERLAP_S`` (shorter
  overlaps are back-channel: "mm-hm"). Voci's "agent-initiated overtalk turns / agent turns" is
  ``interruptions_agent / turns_agent``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .vad import FRAME_S

TURN_GAP_S = 0.3
INTERRUPTED_AFTER_S = 0.5
MIN_OVERLAP_S = 0.3
OVERTALK_WINDOW_STEPS = 30  # "overtalk within the last 30 s"

_TURN_GAP = round(TURN_GAP_S / FRAME_S)
_INTERRUPTED_AFTER = round(INTERRUPTED_AFTER_S / FRAME_S)
_MIN_OVERLAP = round(MIN_OVERLAP_S / FRAME_S)


@dataclass
class Conversation:
    silence_frames: int = 0
    silence_run: int = 0
    longest_silence: int = 0
    overtalk_frames: int = 0
    # per leg (index 0 agent, 1 customer): current run of speech (>0) or non-speech (<0) frames
    runs: list[int] = field(default_factory=lambda: [-_TURN_GAP, -_TURN_GAP])
    turns: list[int] = field(default_factory=lambda: [0, 0])
    interruptions: list[int] = field(default_factory=lambda: [0, 0])
    candidate: int = -1        # leg that may be interrupting, -1 none
    candidate_overlap: int = 0
    recent_overtalk: deque = field(default_factory=lambda: deque(maxlen=OVERTALK_WINDOW_STEPS))

    def step(self, agent: np.ndarray, customer: np.ndarray) -> dict:
        """Consume one step of both legs' masks (equal length). Returns this step's per-call figures."""
        both = agent & customer
        neither = ~(agent | customer)
        over = int(both.sum())
        self.overtalk_frames += over
        self.silence_frames += int(neither.sum())
        self.recent_overtalk.append(over * FRAME_S)
        self._silence_runs(neither)
        if agent.any() or customer.any() or self.candidate >= 0:
            self._turns(agent, customer)
        else:
            n = len(agent)
            self.runs = [min(r, 0) - n for r in self.runs]
        return {
            "overtalk_step_s": over * FRAME_S,
            "silence": 1 if neither.all() else 0,
            "silence_run_s": self.silence_run * FRAME_S,
        }

    def _silence_runs(self, neither: np.ndarray) -> None:
        if neither.all():
            self.silence_run += len(neither)
        else:
            talk = np.flatnonzero(~neither)
            # run up to the first talk frame, then the tail after the last talk frame starts a new run
            self.longest_silence = max(self.longest_silence, self.silence_run + int(talk[0]))
            inner = np.diff(talk) - 1
            if inner.size:
                self.longest_silence = max(self.longest_silence, int(inner.max()))
            self.silence_run = len(neither) - 1 - int(talk[-1])
        self.longest_silence = max(self.longest_silence, self.silence_run)

    def _turns(self, agent: np.ndarray, customer: np.ndarray) -> None:
        """Turns and interruptions, one stretch of unchanged (agent, customer) frames at a time: only a stretch's
        first frame can start a turn or drop a candidate, so the rest of it advances the counters in bulk."""
        codes = agent.astype(np.int8) * 2 + customer.astype(np.int8)
        bounds = np.flatnonzero(np.diff(codes)) + 1
        starts = [0, *bounds.tolist()]
        ends = [*bounds.tolist(), len(codes)]
        for start, end in zip(starts, ends):
            a, c = bool(agent[start]), bool(customer[start])
            self._frame(a, c)
            rest = end - start - 1
            if rest:
                self.runs = [r + rest if r > 0 else r - rest for r in self.runs]
                if self.candidate >= 0:          # a and c: the frame above would have dropped it otherwise
                    need = _MIN_OVERLAP - self.candidate_overlap
                    if rest >= need:
                        self.interruptions[self.candidate] += 1
                        self.candidate, self.candidate_overlap = -1, _MIN_OVERLAP
                    else:
                        self.candidate_overlap += rest

    def _frame(self, a: bool, c: bool) -> None:
        runs, turns = self.runs, self.turns
        for i, speaking in ((0, a), (1, c)):
            other = runs[1 - i]
            if speaking:
                if runs[i] <= -_TURN_GAP:
                    turns[i] += 1
                    if other >= _INTERRUPTED_AFTER:
                        self.candidate, self.candidate_overlap = i, 0
                runs[i] = runs[i] + 1 if runs[i] > 0 else 1
            else:
                runs[i] = runs[i] - 1 if runs[i] < 0 else -1
        if self.candidate >= 0:
            if a and c:
                self.candidate_overlap += 1
                if self.candidate_overlap >= _MIN_OVERLAP:
                    self.interruptions[self.candidate] += 1
                    self.candidate = -1
            else:
                self.candidate = -1

    @property
    def overtalk_recent_s(self) -> float:
        return float(sum(self.recent_overtalk))

    def to_dict(self) -> dict:
        return {
            "sf": self.silence_frames, "sr": self.silence_run, "ls": self.longest_silence, "of": self.overtalk_frames,
            "runs": self.runs, "turns": self.turns, "int": self.interruptions, "cand": self.candidate,
            "co": self.candidate_overlap, "ro": list(self.recent_overtalk),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Conversation":
        c = cls(d["sf"], d["sr"], d["ls"], d["of"], list(d["runs"]), list(d["turns"]), list(d["int"]), d["cand"], d["co"])
        c.recent_overtalk.extend(d["ro"])
        return c
