"""Declarative alert rules (YAML), evaluated once per analysed step of each call.

A rule watches one metric of the step (see ``workers.pairing.rule_metrics``), optionally aggregated
over the last ``within_s`` seconds of call time:

    rules:
      - name: customer_anger
        description: The customer sounds angry.
        severity: warning            # info | warning | critical
        leg: customer                # agent | customer | none (call-level)
        metric: customer_angry       # a metric of the step
        aggregate: value             # value | sum_over | drop_over | mean_over
        within_s: 0                  # for sum_over / drop_over / mean_over
        op: ">"                      # > >= < <=
        threshold: 0.6
        for_s: 10                    # must hold this long (call time) to open
        clear_threshold: 0.4         # hysteresis: clears only past this (default: threshold)
        clear_for_s: 5               # ... for this long (default 0)
        cooldown_s: 60               # after a clear, no reopening for this long
        also:                        # optional: further conditions of the same step, all needed to open
          - {metric: customer_speech, op: ">", threshold: 0.2}

All time is call time (seconds of audio), so a replayed call raises the same alerts at the same moments. Each
step covers ``step_s`` (1 s) of call time: a condition "holds for 10 s" once it held at 10 steps in a row.
When the metric is missing at a step (say, the customer did not speak), pending durations neither advance nor
reset. One alert per rule per call is open at a time.

Evidence metrics (``workers.evidence``), present at every step for both legs, e.g. for the customer:
``customer_anger_evidence`` and ``customer_negative_evidence`` (decaying evidence over the leg's turns, in
seconds of fully voiced speech past the reference), and, at steps where the customer spoke, ``customer_anger_p``
and ``customer_negative_p`` (calibrated probabilities of the window) and ``customer_anger_rel`` and
``customer_negative_rel`` (the same minus the leg's own baseline). Their settings (calibration, half-lives,
references, baseline) live in an optional top-level ``evidence:`` section of the same file (``EvidenceConfig``):

    evidence:
      baseline_windows: 8
      calibration: {angry: {a: 1.2, b: 0.3}, negative: {a: -3.0, b: -1.0}, fitted_on: "..."}
      anger: {half_life_s: 60, ref_abs: 0.5, ref_rel: 0.15, spread_k: 1.0, prior_baseline: 0.2}

An opening alert carries ``evidence``: the metric, its value and the call time since which the condition held;
for evidence metrics also the level, the peak probability and its time, the leg's baseline and its spread, and
the call-time spans of the windows that built the evidence.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .evidence import EvidenceConfig

log = logging.getLogger(__name__)
OPS = {">": lambda v, t: v > t, ">=": lambda v, t: v >= t, "<": lambda v, t: v < t, "<=": lambda v, t: v <= t}
CLEAR_OF = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}
MAX_WINDOW_S = 600.0


class RuleError(ValueError):
    pass


class Condition(BaseModel):
    """A further condition that must hold, at the same step, for a rule to open (a missing metric fails it)."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str = Field(min_length=1)
    op: Literal[">", ">=", "<", "<="]
    threshold: float


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    description: str = ""
    severity: Literal["info", "warning", "critical"]
    leg: Literal["agent", "customer", "none"] = "none"
    metric: str = Field(min_length=1)
    aggregate: Literal["value", "sum_over", "drop_over", "mean_over"] = "value"
    within_s: float = Field(0.0, ge=0, le=MAX_WINDOW_S)
    op: Literal[">", ">=", "<", "<="]
    threshold: float
    for_s: float = Field(0.0, ge=0)
    clear_threshold: float | None = None
    clear_for_s: float = Field(0.0, ge=0)
    cooldown_s: float = Field(0.0, ge=0)
    also: tuple[Condition, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> "Rule":
        if self.aggregate != "value" and self.within_s <= 0:
            raise ValueError(f"aggregate {self.aggregate} needs within_s > 0")
        if self.clear_threshold is not None and OPS[self.op](self.clear_threshold, self.threshold) and self.clear_threshold != self.threshold:
            raise ValueError(f"clear_threshold {self.clear_threshold} must lie on the clear side of threshold {self.threshold} for op {self.op}")
        return self

    @property
    def clear_at(self) -> float:
        return self.threshold if self.clear_threshold is None else self.clear_threshold


class RuleSet:
    def __init__(self, rules: tuple[Rule, ...], evidence: EvidenceConfig | None = None) -> None:
        self.rules = rules
        self.evidence = evidence or EvidenceConfig()

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> "RuleSet":
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RuleError(f"{source}: not valid YAML: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
            raise RuleError(f"{source}: expected a mapping with a list under 'rules'")
        unknown = set(doc) - {"rules", "evidence"}
        if unknown:
            raise RuleError(f"{source}: unknown top-level keys {sorted(unknown)}; expected 'rules' and optionally 'evidence'")
        try:
            evidence = EvidenceConfig.model_validate(doc.get("evidence") or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'evidence'}: {e['msg']}" for e in exc.errors())
            raise RuleError(f"{source}: evidence: {problems}") from None
        rules, seen = [], set()
        for i, raw in enumerate(doc["rules"]):
            name = raw.get("name", f"#{i + 1}") if isinstance(raw, dict) else f"#{i + 1}"
            try:
                rule = Rule.model_validate(raw)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}" for e in exc.errors())
                raise RuleError(f"{source}: rule {name!r} (#{i + 1}): {problems}") from None
            if rule.name in seen:
                raise RuleError(f"{source}: rule {rule.name!r} (#{i + 1}): duplicate name")
            seen.add(rule.name)
            rules.append(rule)
        return cls(tuple(rules), evidence)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RuleSet":
        return cls.from_yaml(Path(path).read_text(), str(path))


@dataclass(frozen=True)
class Alert:
    alert_id: str
    call_id: str
    rule: str
    severity: str
    leg: str | None
    state: str          # open | clear
    value: float
    threshold: float
    t: float            # call time, seconds
    at: float           # capture time, epoch seconds
    message: str
    evidence: dict | None = None   # open alerts: what made the rule fire (see RuleEngine.evaluate)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _RuleState:
    held: float = 0.0                 # seconds the open condition has held (steps with the metric present)
    clear_held: float = 0.0           # seconds the clear condition has held
    open_id: str | None = None
    opened_value: float = 0.0
    cooldown_until: float = -1.0
    history: deque = field(default_factory=deque)   # (t, value) within within_s, for aggregates


class RuleEngine:
    def __init__(self, rules: RuleSet, path: str | None = None, step_s: float = 1.0) -> None:
        self.rules = rules
        self.step_s = step_s
        self.path = path
        self._mtime = os.path.getmtime(path) if path else None
        self._calls: dict[str, dict[str, _RuleState]] = {}

    def maybe_reload(self) -> bool:
        """Re-read the rule file when it changed; keep the current rules when the new file is invalid."""
        if not self.path:
            return False
        try:
            mtime = os.path.getmtime(self.path)
        except OSError as exc:
            log.error("alert rules %s unreadable (%s); keeping the current rules", self.path, exc)
            return False
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            new = RuleSet.load(self.path)
        except (RuleError, OSError) as exc:
            log.error("alert rules not reloaded, keeping the current ones: %s", exc)
            return False
        self.rules = new
        names = {r.name for r in new.rules}
        for states in self._calls.values():
            for gone in [n for n in states if n not in names]:
                del states[gone]
        log.info("alert rules reloaded from %s: %d rules", self.path, len(new.rules))
        return True

    @property
    def evidence(self) -> EvidenceConfig:
        return self.rules.evidence

    def evaluate(self, call_id: str, t: float, at: float, metrics: Mapping[str, float],
                 evidence: Callable[[str], dict | None] | None = None) -> list[Alert]:
        """Alerts opened or cleared at this step. An opening alert carries ``evidence``: the metric, its value, the
        call-time span over which the condition held, and, for metrics that have them (``evidence(metric)``), the
        details behind the value (``workers.evidence``)."""
        states = self._calls.setdefault(call_id, {})
        out = []
        for rule in self.rules.rules:
            st = states.setdefault(rule.name, _RuleState())
            value = self._value(rule, st, t, metrics.get(rule.metric))
            if value is None:
                continue
            # A step of call time [t - step_s, t] counts toward a duration when its condition holds.
            if st.open_id is None:
                if OPS[rule.op](value, rule.threshold) and t >= st.cooldown_until and self._also(rule, metrics):
                    st.held += self.step_s
                    if st.held >= rule.for_s:
                        st.open_id = f"{call_id}:{rule.name}:{int(round(t * 1000))}"
                        st.opened_value = value
                        st.clear_held = 0.0
                        ev = {"metric": rule.metric, "value": round(float(value), 4), "held_from_t": round(t - st.held, 3), "t": t}
                        extra = evidence(rule.metric) if evidence is not None else None
                        if extra:
                            ev.update(extra)
                        out.append(self._alert(rule, st.open_id, call_id, "open", value, rule.threshold, t, at, ev))
                else:
                    st.held = 0.0
            else:
                if OPS[CLEAR_OF[rule.op]](value, rule.clear_at):
                    st.clear_held += self.step_s
                    if st.clear_held >= rule.clear_for_s:
                        out.append(self._alert(rule, st.open_id, call_id, "clear", value, rule.clear_at, t, at))
                        st.open_id, st.held, st.clear_held = None, 0.0, 0.0
                        st.cooldown_until = t + rule.cooldown_s
                else:
                    st.clear_held = 0.0
        return out

    @staticmethod
    def _also(rule: Rule, metrics: Mapping[str, float]) -> bool:
        return all(metrics.get(c.metric) is not None and OPS[c.op](metrics[c.metric], c.threshold) for c in rule.also)

    @staticmethod
    def _value(rule: Rule, st: _RuleState, t: float, x: float | None) -> float | None:
        if rule.aggregate == "value":
            return x
        if x is not None:
            st.history.append((t, float(x)))
        while st.history and st.history[0][0] <= t - rule.within_s:
            st.history.popleft()
        if x is None or not st.history:
            return None
        values = [v for _, v in st.history]
        if rule.aggregate == "sum_over":
            return sum(values)
        if rule.aggregate == "mean_over":
            return sum(values) / len(values)
        return max(values) - values[-1]   # drop_over

    @staticmethod
    def _alert(rule: Rule, alert_id: str, call_id: str, state: str, value: float, threshold: float, t: float, at: float,
               evidence: dict | None = None) -> Alert:
        what = rule.description or rule.name
        if state == "open":
            msg = f"{what} ({rule.metric}{'' if rule.aggregate == 'value' else f' {rule.aggregate} {rule.within_s:g} s'} {value:.2f} {rule.op} {threshold:g} for {rule.for_s:g} s)"
        else:
            msg = f"cleared: {what} ({rule.metric} {value:.2f})"
        return Alert(alert_id, call_id, rule.name, rule.severity, None if rule.leg == "none" else rule.leg, state,
                     round(float(value), 4), float(threshold), float(t), float(at), msg, evidence)

    def open_alerts(self, call_id: str) -> list[str]:
        return [st.open_id for st in self._calls.get(call_id, {}).values() if st.open_id]

    def export_state(self, call_id: str) -> dict:
        return {name: {"held": st.held, "clear": st.clear_held, "open": st.open_id, "ov": st.opened_value,
                       "cool": st.cooldown_until, "h": [list(p) for p in st.history]}
                for name, st in self._calls.get(call_id, {}).items()
                if st.held or st.open_id or st.history or st.cooldown_until >= 0}

    def restore_state(self, call_id: str, state: dict) -> None:
        self._calls[call_id] = {name: _RuleState(d["held"], d["clear"], d["open"], d["ov"], d["cool"], deque(tuple(p) for p in d["h"]))
                                for name, d in state.items()}

    def forget(self, call_id: str) -> None:
        self._calls.pop(call_id, None)
