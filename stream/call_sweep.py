"""Recall against false alarms as one rule's threshold moves, computed offline: the per-step metrics recorded
in an in-process run (``steps``) go through a fresh rule engine once per threshold, no audio or model needed.

The same function re-runs the unchanged rules too, which must reproduce the run's own alerts exactly (the
report's ``sweep.reproduces_run``): the check that the offline numbers mean the same as the live ones.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .call_metrics import alert_summary, call_outcome

DEFAULT_FACTORS = tuple(float(f) for f in np.round(np.geomspace(0.25, 2.0, 13), 3))


def _engine(ruleset):
    from workers.rules import RuleEngine
    return RuleEngine(ruleset)


def with_threshold(ruleset, rule_name: str, threshold: float):
    """A copy of the rule set in which ``rule_name`` opens at ``threshold``; its clear threshold keeps its
    distance from the open threshold (so the hysteresis stays as configured)."""
    from workers.rules import RuleSet
    rules = []
    found = False
    for rule in ruleset.rules:
        if rule.name == rule_name:
            found = True
            update = {"threshold": threshold}
            if rule.clear_threshold is not None:
                update["clear_threshold"] = threshold + (rule.clear_threshold - rule.threshold)
            rule = rule.model_copy(update=update)
        rules.append(rule)
    if not found:
        raise ValueError(f"no rule named {rule_name!r} in the rule set (have {[r.name for r in ruleset.rules]})")
    return RuleSet(tuple(rules))


def rerun(ruleset, steps: dict[str, list]) -> dict[str, list[dict]]:
    """Alert events per call from recorded (t, at, metrics) steps."""
    engine = _engine(ruleset)
    out = {}
    for call_id, seq in steps.items():
        events = []
        for t, at, metrics in seq:
            events.extend(a.to_dict() for a in engine.evaluate(call_id, t, at, metrics))
        engine.forget(call_id)
        out[call_id] = events
    return out


def alert_key(alerts: list[dict]) -> list[tuple]:
    """What two runs must agree on: which rule opened or cleared, and at which call time."""
    return [(a["rule"], a["state"], round(float(a["t"]), 3)) for a in alerts]


def timeline_key(timeline: list[dict]) -> list[tuple]:
    """What two runs' timelines must agree on: each step and leg's top emotion and sentiment, as written."""
    return [(str(e["t"]), e["leg"], e.get("emotion"), e.get("sentiment")) for e in timeline]


def sweep(calls: list[dict], steps: dict[str, list], ruleset, rule_name: str, rules: set[str],
          thresholds: Iterable[float] | None = None) -> dict:
    """One point per threshold: escalation recall, calm calls flagged, false alarms per hour of calm audio."""
    base = next((r for r in ruleset.rules if r.name == rule_name), None)
    if base is None:
        raise ValueError(f"no rule named {rule_name!r} to sweep (have {[r.name for r in ruleset.rules]})")
    values = sorted(thresholds) if thresholds is not None else sorted({round(base.threshold * f, 4) for f in DEFAULT_FACTORS})
    points = []
    for v in values:
        events = rerun(with_threshold(ruleset, rule_name, v), steps)
        s = alert_summary([call_outcome(c, events.get(c["call_id"], []), rules) for c in calls])
        points.append({"threshold": v, "escalation_recall": s["escalation_recall"], "calm_flagged_share": s["calm_flagged_share"],
                       "non_escalation_flagged_share": s["non_escalation_flagged_share"],
                       "false_alarms_per_hour_calm": s["false_alarms_per_hour_calm"], "seconds_to_alert_median": s["seconds_to_alert_median"]})
    return {"rule": rule_name, "metric": base.metric, "op": base.op, "configured_threshold": base.threshold, "points": points}
