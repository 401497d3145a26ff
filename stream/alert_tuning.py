"""Choosing alert defaults from captured per-step scores of labelled calls (``scripts/tune_alerts.py``).

Replays only the decision logic (``workers.evidence`` and ``workers.rules``, exactly as ``workers.pairing`` calls
them) over the captured steps, so a parameter search costs no inference; fits the Platt calibration; searches
each escalation rule's settings on its own grid and scores every combination exactly. An escalation counts as
caught when one of ``CAUGHT_BY`` opens at or after the customer's first angry segment; any of them opening on a
calm call flags it (as ``stream.call_metrics`` counts them)."""

from __future__ import annotations

import itertools
import json
import math
import statistics
import sys

import numpy as np
import yaml

from stream.redis_keys import LEGS
from workers import evidence as ev_mod
from workers.evidence import CallEvidence
from workers.pairing import rule_metrics
from workers.rules import RuleEngine, RuleSet

CAUGHT_BY = ("customer_anger", "customer_negative", "sentiment_drop")
NEGATIVE = {"angry", "sad", "fearful", "disgust", "bored"}
MAX_CALM_FLAGGED = 0.05     # on the tuning calls, keep a margin under the 0.1 target
MAX_NON_ESCALATION_FLAGGED = 0.1   # tense-at-rest, single-burst and angry-agent calls count too


def replay(call: dict, ruleset: RuleSet) -> list:
    engine, ev, cfg = RuleEngine(ruleset), CallEvidence(LEGS), ruleset.evidence
    alerts = []
    for t, info in call["steps"]:
        m = rule_metrics(info, {"silence_run_s": 0.0, "overtalk_step_s": 0.0})
        m.update(ev.step(t, info, cfg, 1.0))
        alerts += engine.evaluate(call["call_id"], t, t, m, lambda name: ev.details(cfg).get(name))
    return alerts


def first_angry(call: dict) -> float | None:
    if call.get("meta", {}).get("first_angry_customer_s") is not None:
        return call["meta"]["first_angry_customer_s"]
    starts = [s["start_s"] for s in call["segments"] if s["leg"] == "customer" and s["emotion"] == "angry"]
    return min(starts) if starts else None


def score(calls: list[dict], ruleset: RuleSet, rules: tuple[str, ...] = CAUGHT_BY) -> dict:
    esc, calm, delays, calm_hours, calm_alarms, per_call, max_open = 0, 0, [], 0.0, 0, [], 0
    caught = flagged = quiet = quiet_flagged = 0
    for call in calls:
        alerts = [a for a in replay(call, ruleset) if a.rule in rules and a.state == "open"]
        for r in rules:
            max_open = max(max_open, sum(1 for a in alerts if a.rule == r))
        kind = call["type"]
        row = {"call_id": call["call_id"], "type": kind, "alerts": [(a.rule, a.t) for a in alerts]}
        if kind == "escalation":
            esc += 1
            t0 = first_angry(call)
            hits = [a.t for a in alerts if t0 is not None and a.t >= t0]
            if hits:
                caught += 1
                delays.append(min(hits) - t0)
                row["delay_s"] = min(hits) - t0
        else:
            quiet += 1
            quiet_flagged += bool(alerts)
        if kind == "calm":
            calm += 1
            calm_hours += (call["steps"][-1][0] if call["steps"] else 0.0) / 3600
            calm_alarms += len(alerts)
            flagged += bool(alerts)
        per_call.append(row)
    return {"escalations": esc, "recall": caught / esc if esc else None, "calm": calm,
            "calm_flagged": flagged / calm if calm else None,
            "non_escalation_flagged": quiet_flagged / quiet if quiet else None,
            "false_alarms_per_calm_hour": calm_alarms / calm_hours if calm_hours else None,
            "median_delay_s": statistics.median(delays) if delays else None,
            "p90_delay_s": float(np.percentile(delays, 90)) if delays else None,
            "max_opens_per_rule_per_call": max_open, "per_call": per_call}


# -- calibration ---------------------------------------------------------------------------------
def labelled_windows(calls: list[dict], window_s: float = 2.0, min_speech: float = 0.5):
    """(P(angry), sentiment, emotion label) of every well-voiced scored window of either leg, labelled by the
    segment that covers most of the window."""
    out = []
    for call in calls:
        segs = call["segments"]
        for t, info in call["steps"]:
            for leg, i in info.items():
                if not i or "e" not in i or i["speech"] < min_speech:
                    continue
                best, cover = None, 0.0
                for s in segs:
                    if s["leg"] != leg:
                        continue
                    c = min(t, s["end_s"]) - max(t - window_s, s["start_s"])
                    if c > cover:
                        best, cover = s["emotion"], c
                if best is not None and cover >= 0.5 * window_s:
                    out.append((i["e"]["angry"], i["s"], best))
    return out


def _penalised_log_loss(a: float, b: float, x: np.ndarray, y: np.ndarray, l2: float) -> float:
    z = a * x + b
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * a * a)


def platt(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> tuple[float, float]:
    """Logistic regression y ~ sigmoid(a x + b) by Newton's method with a backtracking line search (a full Newton
    step can overshoot and diverge when the scores are near-separable, as an over-confident model's are); a small
    ridge on ``a`` keeps it finite when they are separable."""
    if x.size == 0 or y.min() == y.max():
        raise ValueError(f"Platt scaling needs windows of both classes; got {x.size} windows, {int(y.sum())} positive")
    a, b = 1.0, 0.0
    loss = _penalised_log_loss(a, b, x, y, l2)
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(a * x + b, -30, 30)))
        g = np.array([np.sum((p - y) * x) + l2 * a, np.sum(p - y)])
        w = p * (1 - p)
        h = np.array([[np.sum(w * x * x) + l2, np.sum(w * x)], [np.sum(w * x), np.sum(w) + 1e-9]])
        step = np.linalg.solve(h, g)
        t = 1.0
        while True:     # halve the step until the loss falls enough (Armijo)
            new = _penalised_log_loss(a - t * step[0], b - t * step[1], x, y, l2)
            if new <= loss + 1e-4 * t * float(g @ -step) or t < 1e-6:
                break
            t *= 0.5
        a, b, loss = a - t * step[0], b - t * step[1], new
        if np.abs(t * step).max() < 1e-7:
            break
    return float(a), float(b)


def fit_calibration(calls: list[dict]) -> dict:
    w = labelled_windows(calls)
    pa = np.array([r[0] for r in w])
    s = np.array([r[1] for r in w])
    la = np.array([r[2] == "angry" for r in w], float)
    ln = np.array([r[2] in NEGATIVE for r in w], float)
    clip = ev_mod.LOGIT_CLIP
    x = np.log(np.clip(pa, clip, 1 - clip) / (1 - np.clip(pa, clip, 1 - clip)))
    a1, b1 = platt(x, la)
    a2, b2 = platt(s, ln)
    return {"angry": {"a": round(a1, 4), "b": round(b1, 4)}, "negative": {"a": round(a2, 4), "b": round(b2, 4)},
            "n_windows": len(w), "n_angry": int(la.sum()), "n_negative": int(ln.sum())}


def with_params(doc: dict, cal: dict, params: dict) -> dict:
    d = json.loads(json.dumps(doc))
    ev = d.setdefault("evidence", {})
    ev["calibration"] = {"fitted_on": cal.get("fitted_on", ""), "angry": cal["angry"], "negative": cal["negative"]}
    for k in ("baseline_windows", "warmup_windows"):
        if k in params:
            ev[k] = params[k]
    for sig in ("anger", "negative"):
        ev.setdefault(sig, {}).update({k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(sig + ".")})
    for rule in d["rules"]:
        for k, v in params.items():
            if not k.startswith(rule["name"] + "."):
                continue
            field = k.split(".", 1)[1]
            if field == "min_turns":       # an 'also' condition on the evidence episode's turns
                rule["also"] = [{"metric": rule["metric"].replace("_evidence", "_turns"), "op": ">=", "threshold": v}]
            else:
                rule[field] = v
    return d


# The three escalation rules read independent state (anger evidence, negativity evidence, rolling sentiment), so
# each is searched on its own grid and the per-call outcomes are combined: every combination is scored exactly,
# at the cost of replaying each rule's settings once.
GRIDS = {
    "customer_anger": {
        "anger.half_life_s": [60, 120],
        "anger.ref_abs": [0.15, 0.3, 0.5],
        "anger.ref_rel": [1.0, 2.0],
        "anger.spread_k": [1.0],
        "anger.min_step": [-0.5, -1.5],
        "anger.max_step": [1.5, 3.0],
        "customer_anger.threshold": [4.0, 7.0, 11.0],
        "customer_anger.min_turns": [1, 2],
    },
    "customer_negative": {
        "negative.half_life_s": [60, 120],
        "negative.ref_abs": [0.5, 0.7],
        "negative.ref_rel": [1.0, 2.0],
        "customer_negative.threshold": [6.0, 12.0, 20.0],
        "customer_negative.min_turns": [1, 2],
    },
    "sentiment_drop": {"sentiment_drop.threshold": [0.6, 0.9, 1.2]},
}


def _opens(calls: list[dict], ruleset: RuleSet, rule: str) -> list[list[float]]:
    return [[a.t for a in replay(call, ruleset) if a.rule == rule and a.state == "open"] for call in calls]


def _combine(calls: list[dict], outcomes: list[list[list[float]]]) -> dict:
    esc = calm = quiet = caught = flagged = quiet_flagged = alarms = 0
    delays, calm_hours, max_open = [], 0.0, 0
    for i, call in enumerate(calls):
        opens = [o[i] for o in outcomes]
        max_open = max([max_open] + [len(o) for o in opens])   # an evidence rule never clears within a call here
        times = sorted(t for o in opens for t in o)
        if call["type"] == "escalation":
            esc += 1
            t0 = first_angry(call)
            after = [t for t in times if t0 is not None and t >= t0]
            if after:
                caught += 1
                delays.append(after[0] - t0)
        else:
            quiet += 1
            quiet_flagged += bool(times)
            if call["type"] == "calm":
                calm += 1
                flagged += bool(times)
                alarms += len(times)
                calm_hours += (call["steps"][-1][0] if call["steps"] else 0.0) / 3600
    return {"escalations": esc, "recall": caught / esc if esc else None, "calm": calm,
            "calm_flagged": flagged / calm if calm else None,
            "non_escalation_flagged": quiet_flagged / quiet if quiet else None,
            "false_alarms_per_calm_hour": alarms / calm_hours if calm_hours else None,
            "median_delay_s": statistics.median(delays) if delays else None,
            "p90_delay_s": float(np.percentile(delays, 90)) if delays else None,
            "max_opens_per_rule_per_call": max_open}


def softened(calls: list[dict], temperature: float) -> list[dict]:
    """The same calls with every window's scores made less sure (P(angry) at temperature T on its log-odds, the
    sentiment score divided by T): how a model sounds on speakers it never trained on. The tuning calls' speakers
    are in the judged model's training set, so their scores are over-confident; a setting that still catches the
    escalations on softened scores is preferred."""
    out = json.loads(json.dumps(calls))
    clip = ev_mod.LOGIT_CLIP
    for call in out:
        for _, info in call["steps"]:
            for i in info.values():
                if i and "e" in i:
                    p = min(max(i["e"]["angry"], clip), 1 - clip)
                    i["e"]["angry"] = 1 / (1 + math.exp(-math.log(p / (1 - p)) / temperature))
                    i["s"] = i["s"] / temperature
    return out


def _musts(calls: list[dict], outcomes: list[list[list[float]]], catch: set[str], quiet: set[str]) -> bool:
    """The named calls behave: each of ``catch`` raises an alert after its first angry turn, ``quiet`` none."""
    for i, call in enumerate(calls):
        times = [t for o in outcomes for t in o[i]]
        if call["call_id"] in quiet and times:
            return False
        if call["call_id"] in catch and not any(t >= (first_angry(call) or 0) for t in times):
            return False
    return True


def tune(calls: list[dict], doc: dict, fitted_on: str, temperature: float = 2.0, extra: list[dict] | None = None,
         catch: set[str] = frozenset(), quiet: set[str] = frozenset()) -> tuple[dict, dict, int]:
    """``extra``: further training-fold calls that are not scored but must behave (``catch``, ``quiet``)."""
    extra = extra or []
    cal = fit_calibration(calls)
    cal["fitted_on"] = fitted_on + f" ({cal['n_windows']} windows, {cal['n_angry']} angry, {cal['n_negative']} negative)"
    per_rule: dict[str, list[tuple[dict, list, list, list]]] = {}
    soft = softened(calls, temperature)
    for rule, grid in GRIDS.items():
        per_rule[rule] = []
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            full = RuleSet.from_yaml(yaml.safe_dump(with_params(doc, cal, params)))
            rs = RuleSet(tuple(r for r in full.rules if r.name == rule), full.evidence)   # the other rules are scored apart
            per_rule[rule].append((params, _opens(calls, rs, rule), _opens(soft, rs, rule), _opens(extra, rs, rule)))
        print(f"{rule}: {len(per_rule[rule])} settings replayed", file=sys.stderr)
    tried = []
    for combo in itertools.product(*per_rule.values()):
        params = {k: v for p, *_ in combo for k, v in p.items()}
        if extra and not _musts(extra, [c[3] for c in combo], catch, quiet):
            continue
        res = _combine(calls, [c[1] for c in combo])
        res["recall_softened"] = _combine(soft, [c[2] for c in combo])["recall"]
        tried.append((params, res))
    ok = [x for x in tried if (x[1]["calm_flagged"] or 0) <= MAX_CALM_FLAGGED and (x[1]["non_escalation_flagged"] or 0) <= MAX_NON_ESCALATION_FLAGGED
          and x[1]["max_opens_per_rule_per_call"] <= 1]
    pool = ok or tried
    best = max(pool, key=lambda x: (x[1]["recall"] or 0, x[1]["recall_softened"] or 0, -(x[1]["non_escalation_flagged"] or 0),
                                    -(x[1]["calm_flagged"] or 0), -(x[1]["median_delay_s"] or 1e9)))
    chosen = with_params(doc, cal, best[0])
    return chosen, {**best[1], "params": best[0], "feasible": len(ok)}, len(tried)
