"""Per-leg evidence of a sustained emotion: built up over a leg's scored speech windows, decayed with call time.

Each call-level step (``step_s`` of call time) feeds every leg's scores into one accumulator per signal:

* ``anger``: the calibrated probability that the window is angry, from the emotion model's P(angry);
* ``negative``: the calibrated probability that the window is negative, from the sentiment score.

Calibration is Platt scaling fitted offline (``EvidenceConfig.calibration``, with how it was fitted):
``p = sigmoid(a * logit(P(angry)) + b)`` and ``p = sigmoid(a * sentiment + b)``.

An accumulator is a decaying one-sided CUSUM of log-odds (Page's test for a shift, with a memory of
``half_life_s``), in units of log-odds x seconds of fully voiced speech:

    E(t) = max(0, E(t - step) * 2 ** (-step / half_life_s) + w * clip(min(L - logit(ref_abs), L - B - lift), min_step, max_step))

* ``L = logit(p)``: for a calibrated ``p``, ``L`` minus the log-odds of a reference is the window's log
  likelihood ratio of "angry" against that reference, which is what a CUSUM sums. ``clip`` bounds what one window
  can add (an over-confident window) or take away (one calm phrase between angry turns).
* ``w`` weighs the window by its speech (a 2 s window that is mostly silence, at a turn's edge, weighs little);
  a step where the leg did not speak only decays ``E``: silence never wipes the evidence out, time does.
* ``L - logit(ref_abs)`` is the absolute term. ``L - B - lift`` is the relative one: ``B`` is the median log-odds
  of the leg's first ``baseline_windows`` well-voiced windows (causal: only what the leg said so far), and
  ``lift`` is at least ``ref_rel`` and at least ``spread_k`` robust standard deviations (1.4826 x MAD) of that
  stretch. Until ``warmup_windows`` windows are in, ``prior_baseline`` stands in for the baseline; past the
  warm-up, a window that adds evidence does not enter the baseline (it is not the leg at rest). So a customer
  who sounds tense at rest is judged against his own rest, and a quiet voice still needs to cross ``ref_abs``.
* Calm speech pulls ``E`` down; ``E`` never goes below zero.
* ``turns`` counts the leg's turns (speech between pauses of at least ``TURN_PAUSE_S``) that added to the current evidence episode, so
  a rule can tell one outburst from a rise over several turns (``also: [{metric: customer_anger_turns, ...}]``).

Everything is call time, and the whole state is saved with the call (``to_dict``/``from_dict``), so a restarted
or rebalanced worker continues with identical results. The values are exposed to the alert rules as
``{leg}_{signal}_evidence``, ``{leg}_{signal}_p`` (calibrated, this window) and ``{leg}_{signal}_rel``
(``L - B``, log-odds above the leg's baseline), and an alert on an evidence metric carries ``details``: the level, the peak and its
time, the baseline and its spread, and the call-time spans of the windows that built the evidence.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .jsonfmt import compact_json

SIGNALS = ("anger", "negative")
MAD_TO_SD = 1.4826           # robust standard deviation of a normal sample from its median absolute deviation
FULL_SPEECH_FRACTION = 0.6   # a window with this share of speech (or more) weighs 1
MIN_BASELINE_WEIGHT = 0.5    # only well-voiced windows enter the baseline
TURN_PAUSE_S = 0.7          # a pause this long ends the leg's turn (clips inside a turn are 0.15-0.4 s apart)
MAX_SPANS = 8                # call-time spans kept per evidence episode (the latest ones)
EPS = 1e-9
LOGIT_CLIP = 1e-4


class Platt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    a: float = 1.0
    b: float = 0.0


class Calibration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    angry: Platt = Platt()                      # on logit(P(angry))
    negative: Platt = Platt(a=-2.0, b=-1.0)     # on the sentiment score in -1..+1
    fitted_on: str = "uncalibrated defaults"


class SignalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    half_life_s: float = Field(60.0, gt=0, le=3600)
    ref_abs: float = Field(0.5, gt=0, lt=1)             # probability
    ref_rel: float = Field(1.0, ge=0, le=20)            # log-odds above the baseline
    spread_k: float = Field(1.0, ge=0, le=10)
    prior_baseline: float = Field(0.2, gt=0, lt=1)      # probability
    max_step: float = Field(3.0, gt=0, le=20)           # log-odds one window can add ...
    min_step: float = Field(-1.0, lt=0, ge=-20)         # ... or take away


class EvidenceConfig(BaseModel):
    """The ``evidence:`` section of the rules file (every field optional)."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    baseline_windows: int = Field(8, ge=1, le=60)
    warmup_windows: int = Field(4, ge=1, le=60)
    window_s: float = Field(2.0, gt=0)          # the models' window: a step at t covers [t - window_s, t]
    calibration: Calibration = Calibration()
    anger: SignalConfig = SignalConfig()
    negative: SignalConfig = SignalConfig()


def pauses(mask: np.ndarray, frame_s: float) -> tuple[float, float, float]:
    """(leading, trailing, longest inner) non-speech of a step's speech mask, in seconds; all of it when silent."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return len(mask) * frame_s, len(mask) * frame_s, len(mask) * frame_s
    inner = int(np.diff(idx).max()) - 1 if idx.size > 1 else 0
    return idx[0] * frame_s, (len(mask) - 1 - idx[-1]) * frame_s, inner * frame_s


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _logit(p: float) -> float:
    p = min(max(p, LOGIT_CLIP), 1.0 - LOGIT_CLIP)
    return math.log(p / (1.0 - p))


def calibrated(signal: str, emotions: Mapping[str, float], sentiment: float, cal: Calibration) -> float:
    if signal == "anger":
        return _sigmoid(cal.angry.a * _logit(emotions.get("angry", 0.0)) + cal.angry.b)
    return _sigmoid(cal.negative.a * sentiment + cal.negative.b)


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


class Accumulator:
    """One signal of one leg. ``base``: the baseline stretch; the rest describes the current evidence episode."""

    __slots__ = ("level", "base", "p", "rel", "since", "peak", "peak_t", "spans", "windows", "turns", "in_turn", "_stats")

    def __init__(self) -> None:
        self.level = 0.0
        self.base: list[float] = []
        self.p: float | None = None
        self.rel: float | None = None
        self.since: float | None = None
        self.peak = 0.0
        self.peak_t = 0.0
        self.spans: list[list[float]] = []
        self.windows = 0
        self.turns = 0          # the leg's turns (speech between silent steps) that added to this episode
        self.in_turn = False    # the current turn already counted
        self._stats: tuple[int, float, float] | None = None   # (len(base), median, spread): ``base`` only grows

    def baseline(self, cfg: EvidenceConfig, sig: SignalConfig) -> tuple[float, float, bool]:
        """(baseline log-odds, spread in log-odds, ready): the prior during warm-up."""
        if len(self.base) < cfg.warmup_windows:
            return _logit(sig.prior_baseline), 0.0, False
        n = len(self.base)
        if self._stats is None or self._stats[0] != n:
            med = _median(self.base)
            self._stats = (n, med, MAD_TO_SD * _median([abs(x - med) for x in self.base]))
        return self._stats[1], self._stats[2], True

    def update(self, t: float, decay: float, w: float, p: float | None, cfg: EvidenceConfig, sig: SignalConfig, silent: bool) -> None:
        self.level *= decay
        if silent:
            self.in_turn = False
        self.p = p
        self.rel = None
        if p is not None:
            base, spread, _ = self.baseline(cfg, sig)
            lo = _logit(p)
            self.rel = lo - base
            llr = min(lo - _logit(sig.ref_abs), self.rel - max(sig.ref_rel, sig.spread_k * spread))
            inc = w * min(max(llr, sig.min_step), sig.max_step)
            # The baseline is the leg at rest: past the warm-up, a window that is itself evidence does not enter it.
            if w >= MIN_BASELINE_WEIGHT and len(self.base) < cfg.baseline_windows and (len(self.base) < cfg.warmup_windows or inc <= 0):
                self.base.append(round(lo, 4))
            if inc > 0:
                if self.level <= EPS:
                    self.since, self.peak, self.spans, self.windows, self.turns, self.in_turn = t - cfg.window_s, 0.0, [], 0, 0, False
                self.windows += 1
                if not self.in_turn:
                    self.turns, self.in_turn = self.turns + 1, True
                if p > self.peak:
                    self.peak, self.peak_t = p, t
                if self.spans and self.spans[-1][1] >= t - cfg.window_s:
                    self.spans[-1][1] = t
                else:
                    self.spans.append([t - cfg.window_s, t])
                    del self.spans[:-MAX_SPANS]
            self.level = max(0.0, self.level + inc)
        if self.level <= EPS:
            self.level, self.since, self.spans, self.windows, self.peak, self.turns = 0.0, None, [], 0, 0.0, 0

    def details(self, cfg: EvidenceConfig, sig: SignalConfig) -> dict:
        base, spread, ready = self.baseline(cfg, sig)
        return {"level": round(self.level, 3), "peak": round(self.peak, 3), "peak_t": self.peak_t,
                "baseline": round(_sigmoid(base), 3), "baseline_spread": round(spread, 3), "baseline_ready": ready,
                "since": self.since, "windows": self.windows, "turns": self.turns, "spans": [[round(a, 2), round(b, 2)] for a, b in self.spans]}

    def details_key(self) -> tuple:
        """Everything ``details`` reads but the settings: equal keys, equal details (``base`` only grows)."""
        return (self.level, self.peak, self.peak_t, len(self.base), self.since, self.windows, self.turns, *map(tuple, self.spans))

    def to_list(self) -> list:
        return [self.level, self.base, self.p, self.rel, self.since, self.peak, self.peak_t, self.spans, self.windows, self.turns, self.in_turn]

    @classmethod
    def from_list(cls, d: list) -> "Accumulator":
        a = cls()
        a.level, a.base, a.p, a.rel, a.since, a.peak, a.peak_t, a.spans, a.windows, a.turns, a.in_turn = d
        a.base, a.spans = list(a.base), [list(s) for s in a.spans]
        return a


class LegEvidence:
    """Both signals of one leg, plus the previous step's speech share (a window spans two steps)."""

    __slots__ = ("acc", "t", "prev_speech", "trail")

    def __init__(self) -> None:
        self.acc = {s: Accumulator() for s in SIGNALS}
        self.t: float | None = None
        self.prev_speech = 0.0
        self.trail = 0.0        # non-speech at the end of the previous step, seconds (a pause may span steps)

    def step(self, t: float, info: Mapping | None, cfg: EvidenceConfig, hop_s: float, out: dict[str, float], leg: str) -> None:
        dt = hop_s if self.t is None else max(t - self.t, 0.0)
        self.t = t
        speech = float(info["speech"]) if info else 0.0
        w = min(1.0, 0.5 * (speech + self.prev_speech) / FULL_SPEECH_FRACTION)
        self.prev_speech = speech
        # info["pause"]: (leading, trailing, inner) non-speech of the step; a step without it counts as silent
        if info and info.get("pause"):
            lead, trail, inner = info["pause"]
            turn_ended = max(inner, self.trail + lead) >= TURN_PAUSE_S
        else:
            lead = trail = inner = hop_s * (1.0 - speech)
            turn_ended = speech < 1.0 - TURN_PAUSE_S / hop_s
        self.trail = trail if trail < hop_s else self.trail + hop_s
        scored = bool(info) and "e" in info
        for name, acc in self.acc.items():
            sig: SignalConfig = getattr(cfg, name)
            p = calibrated(name, info["e"], info["s"], cfg.calibration) if scored else None
            acc.update(t, 2.0 ** (-dt / sig.half_life_s), w, p, cfg, sig, turn_ended)
            out[f"{leg}_{name}_evidence"] = round(acc.level, 4)
            out[f"{leg}_{name}_turns"] = acc.turns
            if p is not None:
                out[f"{leg}_{name}_p"] = round(p, 4)
                out[f"{leg}_{name}_rel"] = round(acc.rel, 3)

    def to_dict(self) -> dict:
        return {"a": {k: v.to_list() for k, v in self.acc.items()}, "t": self.t, "ps": self.prev_speech, "tr": self.trail}

    @classmethod
    def from_dict(cls, d: dict) -> "LegEvidence":
        e = cls()
        e.acc = {k: Accumulator.from_list(v) for k, v in d["a"].items()}
        e.t, e.prev_speech, e.trail = d["t"], d["ps"], d.get("tr", 0.0)
        return e


class CallEvidence:
    """The evidence of a call's legs; ``step`` returns the rule metrics of one call-level step."""

    def __init__(self, legs: tuple[str, ...]) -> None:
        self.legs = {leg: LegEvidence() for leg in legs}
        self.cfg: EvidenceConfig | None = None    # the settings of the last step (not saved: the rules file has them)
        self._json: tuple[tuple, str] | None = None   # (key, details as JSON) of the last render

    def step(self, t: float, info: Mapping[str, Mapping | None], cfg: EvidenceConfig, hop_s: float) -> dict[str, float]:
        self.cfg = cfg
        out: dict[str, float] = {}
        for leg, ev in self.legs.items():
            ev.step(t, info.get(leg), cfg, hop_s, out, leg)
        return out

    def details(self, cfg: EvidenceConfig | None = None) -> dict[str, dict]:
        """metric name -> what an alert on it carries (evidence metrics only)."""
        cfg = cfg or self.cfg or EvidenceConfig()
        return {f"{leg}_{name}_evidence": acc.details(cfg, getattr(cfg, name))
                for leg, ev in self.legs.items() for name, acc in ev.acc.items()}

    def details_json(self) -> str:
        """``details()`` as compact JSON, for the call hash. Rendered at every step, but unchanged while no evidence
        builds (a level at 0 neither decays nor grows): then the last one is reused."""
        cfg = self.cfg or EvidenceConfig()
        key = (cfg, *(acc.details_key() for ev in self.legs.values() for acc in ev.acc.values()))
        if self._json is None or self._json[0] != key:
            self._json = (key, compact_json(self.details(cfg)))
        return self._json[1]

    def to_dict(self) -> dict:
        return {leg: ev.to_dict() for leg, ev in self.legs.items()}

    @classmethod
    def from_dict(cls, legs: tuple[str, ...], d: dict | None) -> "CallEvidence":
        c = cls(legs)
        for leg, v in (d or {}).items():
            c.legs[leg] = LegEvidence.from_dict(v)
        return c
