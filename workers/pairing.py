"""Leg pairing: the two legs' frozen steps become call-level steps, each with its conversation metrics,
timeline entries, rule metrics, risk and alerts. A leg that lags (or never sends) counts as silent."""

from __future__ import annotations

import time
from typing import Callable, Protocol

import numpy as np

from stream.settings import Settings

from .batch import BatchResult
from .call_state import CallState
from .evidence import EvidenceConfig
from .metrics import WorkerMetrics
from .risk import call_risk
from .vad import speech_share

MAX_LEG_LAG_STEPS = 5   # a leg this far behind (or absent) counts as silent for call-level metrics
SPARK_WINDOW_S = 60.0
ALERT_LOG_KEEP = 10      # opened alerts (with evidence) kept in the call hash for the drill-down
DEFAULT_EVIDENCE = EvidenceConfig()


class RuleRunner(Protocol):
    evidence: EvidenceConfig     # the rules file's evidence: settings

    def evaluate(self, call_id: str, t: float, at: float, metrics: dict[str, float],
                 evidence: Callable[[str], dict | None] | None = None) -> list: ...
    def export_state(self, call_id: str) -> dict: ...
    def restore_state(self, call_id: str, state: dict) -> None: ...
    def forget(self, call_id: str) -> None: ...


class StepPairer:
    def __init__(self, settings: Settings, metrics: WorkerMetrics, rules: RuleRunner | None, clock=time.time) -> None:
        self.s = settings
        self.m = metrics
        self.rules = rules
        self.clock = clock

    def pair(self, call: CallState, out: BatchResult, final: bool) -> None:
        """Advance call-level steps while both legs (or one leg and a lagging/absent other) have masks."""
        a_sc, c_sc = call.scores["agent"], call.scores["customer"]
        for sc in (a_sc, c_sc):
            for k in [k for k in sc.pending_masks if k < call.steps_done]:
                del sc.pending_masks[k]
                sc.pending_info.pop(k, None)
        while True:
            k = call.steps_done
            ma, mc = a_sc.pending_masks.get(k), c_sc.pending_masks.get(k)
            if ma is None and mc is None:
                return
            if ma is None or mc is None:
                missing = "customer" if ma is not None else "agent"
                lagging = call.audio[missing].steps_done + MAX_LEG_LAG_STEPS <= k
                if not (final or lagging):
                    return
                silent = np.zeros_like(ma if ma is not None else mc)
                ma, mc = (ma, silent) if ma is not None else (silent, mc)
            n = min(len(ma), len(mc))
            conv = call.conversation.step(ma[:n], mc[:n])
            a_sc.pending_masks.pop(k, None)
            c_sc.pending_masks.pop(k, None)
            info = {"agent": a_sc.pending_info.pop(k, None), "customer": c_sc.pending_info.pop(k, None)}
            call.steps_done = k + 1
            self._step(call, info, conv, (ma, mc), out)

    def _step(self, call: CallState, info: dict, conv: dict, masks: tuple[np.ndarray, np.ndarray], out: BatchResult) -> None:
        t = call.steps_done * self.s.hop_s
        cust = info["customer"]
        if cust and "avg" in cust:
            call.risk_basis = {"avg": cust["avg"], "ang": cust["ang"], "start": cust["start"]}
        metrics = rule_metrics(info, conv)
        ev_cfg = DEFAULT_EVIDENCE if self.rules is None else self.rules.evidence
        metrics.update(call.evidence.step(t, info, ev_cfg, self.s.hop_s))
        metrics["risk"] = call_risk(call, conv["silence_run_s"])
        at = next((i["cap"] for i in info.values() if i and i["cap"] is not None), call.updated_at or self.clock())
        call.updated_at = at
        if conv["silence"] or conv["overtalk_step_s"] > 0:
            call.recent_marks.append((t, conv["silence"], 1 if conv["overtalk_step_s"] > 0 else 0))
        while call.recent_marks and call.recent_marks[0][0] <= t - SPARK_WINDOW_S:
            call.recent_marks.popleft()
        for leg, mask in zip(("agent", "customer"), masks):
            out.timeline.append((call.call_id, _timeline_entry(t, leg, mask, conv, info[leg], metrics)))
        if self.rules is not None:
            for alert in self.rules.evaluate(call.call_id, t, at, metrics, lambda m: call.evidence.details(ev_cfg).get(m)):
                self._on_alert(call, alert, out)
            call.rules_state = self.rules.export_state(call.call_id)

    def _on_alert(self, call: CallState, alert, out: BatchResult) -> None:
        out.alerts.append(alert)
        if alert.state == "open":
            call.alerts += 1
            call.alerts_open += 1
            if alert.rule not in call.alert_rules:
                call.alert_rules.append(alert.rule)
            call.alert_log.append({"alert_id": alert.alert_id, "rule": alert.rule, "t": alert.t, "evidence": alert.evidence})
            del call.alert_log[:-ALERT_LOG_KEEP]
            self.m.alerts.labels(alert.rule, alert.severity, call.meta.get("queue", "") or "unknown").inc()
        else:
            call.alerts_open = max(0, call.alerts_open - 1)


def rule_metrics(info: dict, conv: dict) -> dict[str, float]:
    """The metrics one call-level step offers the alert rules (see workers/default_rules.yaml)."""
    m: dict[str, float] = {"silence_run_s": conv["silence_run_s"], "overtalk_step_s": conv["overtalk_step_s"]}
    for leg, i in info.items():
        if i is None:
            continue
        m[f"{leg}_speech"] = i["speech"]
        if "e" in i:
            m[f"{leg}_sentiment"] = i["s"]
            m[f"{leg}_sentiment_avg"] = i["avg"]
            for label, p in i["e"].items():
                m[f"{leg}_{label}"] = p
    return m


def _timeline_entry(t: float, leg: str, mask: np.ndarray, conv: dict, i: dict | None, metrics: dict[str, float]) -> dict[str, str]:
    entry = {"t": f"{t:g}", "leg": leg, "speech": f"{speech_share(mask):.2f}", "silence": str(conv["silence"]),
             "overtalk": f"{conv['overtalk_step_s']:.2f}"}
    if i and "e" in i:
        top = max(i["e"], key=i["e"].get)
        entry.update(sentiment=f"{i['s']:.3f}", emotion=top, emotion_score=f"{i['e'][top]:.3f}")
    if i and i["loud"] is not None:
        entry["loudness_dbfs"] = f"{i['loud']:.1f}"
    if f"{leg}_anger_evidence" in metrics:     # what the anger and negativity rules watch, for the drill-down
        entry["anger_evidence"] = f"{metrics[f'{leg}_anger_evidence']:.3f}"
        entry["negative_evidence"] = f"{metrics[f'{leg}_negative_evidence']:.3f}"
    return entry
