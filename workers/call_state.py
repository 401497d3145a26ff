"""Per-call state: metadata, the two legs' audio and score aggregates, and the conversation.

Everything here is derived numbers, never audio, so the whole state can be saved to Redis after every
batch and restored by whichever worker owns the call next.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from stream.redis_keys import LEGS

from .audio import ANALYSIS_RATE_HZ
from .conversation import Conversation
from .jsonfmt import compact_json
from .evidence import CallEvidence
from .leg_audio import LegAudio
from .vad import FRAME_S, VadState

SENTIMENT_EWMA_ALPHA = 0.15   # ~ the last 6-7 scored windows carry most weight
START_WINDOWS = 10            # "sentiment at the start" = mean of the first 10 scored windows
TREND_WINDOW_S = 60.0         # trend = least-squares slope over the last 60 s of call time
LOUDNESS_EWMA_ALPHA = 0.2
MIN_LOUDNESS_DBFS = -100.0


@dataclass
class LegScores:
    speech_frames: int = 0
    steps: int = 0
    windows: int = 0                 # windows scored by the models
    sentiment: float | None = None   # current window
    sentiment_avg: float | None = None
    sentiment_min: float | None = None
    start_sum: float = 0.0
    start_n: int = 0
    sent_sum: float = 0.0
    emotions: dict[str, float] | None = None   # current window
    emotion_sum: dict[str, float] = field(default_factory=dict)
    anger_avg: float = 0.0
    loudness_dbfs: float | None = None
    trend: deque = field(default_factory=deque)  # (t, sentiment) within TREND_WINDOW_S
    last_step_speech: int = 0        # speech frames of the previous step (the first half of the next window)
    pending_masks: dict[int, np.ndarray] = field(default_factory=dict)  # step -> speech mask, until paired
    pending_info: dict[int, dict] = field(default_factory=dict)         # step -> scores as of that step, until paired
    # figures derived from ``trend`` (its slope, the dashboard's sparkline), each with the trend it came from: they
    # are rendered for every step but change only with a scored window, and cost more than the rest of a leg
    _trend_derived: dict = field(default_factory=dict, repr=False, compare=False)

    def add_step(self, mask: np.ndarray, level_db: np.ndarray) -> None:
        self.steps += 1
        n = int(mask.sum())
        self.speech_frames += n
        if n:
            # loudness of speech only: the level a listener hears while this leg talks
            power = float(np.mean(10.0 ** (level_db[mask] / 10.0)))
            db = 10.0 * math.log10(max(power, 1e-10))
            self.loudness_dbfs = db if self.loudness_dbfs is None else (1 - LOUDNESS_EWMA_ALPHA) * self.loudness_dbfs + LOUDNESS_EWMA_ALPHA * db

    def add_scores(self, t: float, emotions: dict[str, float], sentiment: float) -> None:
        self.windows += 1
        self.sentiment = sentiment
        self.sentiment_avg = sentiment if self.sentiment_avg is None else (1 - SENTIMENT_EWMA_ALPHA) * self.sentiment_avg + SENTIMENT_EWMA_ALPHA * sentiment
        if self.windows >= 3:
            self.sentiment_min = self.sentiment_avg if self.sentiment_min is None else min(self.sentiment_min, self.sentiment_avg)
        if self.start_n < START_WINDOWS:
            self.start_sum += sentiment
            self.start_n += 1
        self.sent_sum += sentiment
        self.emotions = emotions
        for k, v in emotions.items():
            self.emotion_sum[k] = self.emotion_sum.get(k, 0.0) + v
        self.anger_avg = (1 - SENTIMENT_EWMA_ALPHA) * self.anger_avg + SENTIMENT_EWMA_ALPHA * emotions.get("angry", 0.0)
        self.trend.append((t, sentiment))
        while self.trend and self.trend[0][0] < t - TREND_WINDOW_S:
            self.trend.popleft()

    @property
    def speech_s(self) -> float:
        return self.speech_frames * FRAME_S

    @property
    def sentiment_start(self) -> float | None:
        return self.start_sum / self.start_n if self.start_n else None

    @property
    def sentiment_mean(self) -> float | None:
        return self.sent_sum / self.windows if self.windows else None

    @property
    def sentiment_trend(self) -> float | None:
        """Slope of sentiment over the last minute, per minute (needs >= 5 scored windows)."""
        if len(self.trend) < 5:
            return None
        return self.from_trend("slope", self._slope)

    def _slope(self) -> float | None:
        t, s = np.array(self.trend).T
        t = t - t.mean()
        denom = float((t * t).sum())
        return float((t * (s - s.mean())).sum() / denom * 60.0) if denom > 0 else None

    def from_trend(self, name: str, compute):
        """``compute()``, recomputed only when ``trend`` changed since the last call for ``name``."""
        key = (self.trend[0], self.trend[-1], len(self.trend)) if self.trend else None
        hit = self._trend_derived.get(name)
        if hit is None or hit[0] != key:
            hit = self._trend_derived[name] = (key, compute())
        return hit[1]

    @property
    def dominant_emotion(self) -> str | None:
        return max(self.emotion_sum, key=self.emotion_sum.get) if self.emotion_sum else None

    def to_dict(self) -> dict:
        return {
            "sp": self.speech_frames, "st": self.steps, "w": self.windows, "s": self.sentiment, "sa": self.sentiment_avg,
            "smin": self.sentiment_min, "ss": self.start_sum, "sn": self.start_n, "sum": self.sent_sum,
            "e": self.emotions, "es": self.emotion_sum, "ang": self.anger_avg, "ld": self.loudness_dbfs,
            "tr": [list(p) for p in self.trend], "lss": self.last_step_speech,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "LegScores":
        s = cls(d["sp"], d["st"], d["w"], d["s"], d["sa"], d["smin"], d["ss"], d["sn"], d["sum"], d["e"], dict(d["es"]), d["ang"], d["ld"])
        s.trend.extend(tuple(p) for p in d["tr"])
        s.last_step_speech = d["lss"]
        return s


@dataclass
class CallState:
    call_id: str
    hop: int
    window: int
    horizon_s: float
    meta: dict[str, str] = field(default_factory=dict)
    status: str = "active"
    started_at: float | None = None
    updated_at: float = 0.0
    last_seen: float = 0.0           # wall clock of the last chunk, for the inactivity timeout
    partition: int | None = None
    steps_done: int = 0              # call-level steps (both legs paired)
    alerts: int = 0
    alert_rules: list[str] = field(default_factory=list)
    alerts_open: int = 0
    alert_log: list[dict] = field(default_factory=list)   # the latest opened alerts with their evidence (drill-down)
    audio: dict[str, LegAudio] = field(default_factory=dict)
    vad: dict[str, VadState] = field(default_factory=dict)
    scores: dict[str, LegScores] = field(default_factory=dict)
    conversation: Conversation = field(default_factory=Conversation)
    rules_state: dict = field(default_factory=dict)
    evidence: CallEvidence = field(default_factory=lambda: CallEvidence(LEGS))   # per-leg alert evidence
    risk_basis: dict = field(default_factory=dict)   # customer scores as of the last paired step
    recent_marks: deque = field(default_factory=deque)  # (t, silence, overtalk) of the last minute: display only, not saved
    end_requested: list | None = None   # [end event time, wall time it arrived]

    def __post_init__(self) -> None:
        for leg in LEGS:
            self.audio.setdefault(leg, LegAudio(self.hop, self.window, self.horizon_s))
            self.vad.setdefault(leg, VadState())
            self.scores.setdefault(leg, LegScores())

    @property
    def duration_s(self) -> float:
        return self.steps_done * self.hop / ANALYSIS_RATE_HZ

    def talk_ratio(self, leg: str) -> float | None:
        d = self.duration_s
        return self.scores[leg].speech_s / d if d > 0 else None

    # -- persistence ---------------------------------------------------------------------------
    def to_state(self) -> str:
        return compact_json({
            "v": 1, "meta": self.meta, "status": self.status, "started_at": self.started_at, "updated_at": self.updated_at,
            "steps": self.steps_done, "alerts": self.alerts, "alert_rules": self.alert_rules,
            "alerts_open": self.alerts_open, "alog": self.alert_log,
            "anchor": {leg: a.anchor() for leg, a in self.audio.items()},
            "vad": {leg: v.to_dict() for leg, v in self.vad.items()},
            "scores": {leg: s.to_dict() for leg, s in self.scores.items()},
            "masks": {leg: {str(k): np.packbits(m).tobytes().hex() + f":{m.size}" for k, m in s.pending_masks.items()} for leg, s in self.scores.items()},
            "conv": self.conversation.to_dict(), "rules": self.rules_state, "end": self.end_requested,
            "info": {leg: {str(k): v for k, v in s.pending_info.items()} for leg, s in self.scores.items()}, "risk": self.risk_basis,
            "ev": self.evidence.to_dict(),
        })

    @classmethod
    def from_state(cls, call_id: str, hop: int, window: int, horizon_s: float, text: str) -> "CallState":
        d = json.loads(text)
        c = cls(call_id, hop, window, horizon_s, meta=d["meta"], status=d["status"], started_at=d["started_at"],
                updated_at=d["updated_at"], steps_done=d["steps"], alerts=d["alerts"], alert_rules=list(d["alert_rules"]),
                alerts_open=d.get("alerts_open", 0), alert_log=list(d.get("alog", [])))
        for leg in LEGS:
            c.audio[leg] = LegAudio.from_anchor(hop, window, horizon_s, d["anchor"][leg])
            c.vad[leg] = VadState.from_dict(d["vad"][leg])
            c.scores[leg] = LegScores.from_dict(d["scores"][leg])
            for k, packed in d["masks"][leg].items():
                hexbits, n = packed.split(":")
                c.scores[leg].pending_masks[int(k)] = np.unpackbits(np.frombuffer(bytes.fromhex(hexbits), np.uint8))[: int(n)].astype(bool)
        c.conversation = Conversation.from_dict(d["conv"])
        c.rules_state = d.get("rules", {})
        c.risk_basis = d.get("risk", {})
        for leg in LEGS:
            c.scores[leg].pending_info = {int(k): v for k, v in d.get("info", {}).get(leg, {}).items()}
        c.end_requested = d.get("end")
        c.evidence = CallEvidence.from_dict(LEGS, d.get("ev"))
        return c
