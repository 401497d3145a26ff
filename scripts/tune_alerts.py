"""Choose the alert defaults on training-fold calls and report them, unchanged, on held-out ones.

    # 1. score every call once (the real worker core in-process: decode, VAD, models, pairing)
    python scripts/tune_alerts.py capture /work/calls/dev --model-dir M --out dev.scores.json
    # 2. fit the calibration and search the evidence parameters on those scores only; writes a rules file
    python scripts/tune_alerts.py tune dev.scores.json --rules workers/default_rules.yaml --out tuned.yaml
    # 3. the chosen rules on other scores, with no change
    python scripts/tune_alerts.py report test.scores.json --rules tuned.yaml

A calls folder holds ``calls.json`` (a list of calls: ``file``, ``call_id``, ``type``, ``segments`` with ``leg``,
``emotion``, ``start_s``, ``end_s``) and the stereo audio (left agent, right customer), as ``callpulse
evaluate-calls`` reads it. Steps 2 and 3 replay only the decision logic (``workers.evidence`` and
``workers.rules``, exactly as the pipeline calls them) over the captured per-step scores, so a parameter search
costs no inference. An escalation counts as caught when one of ``CAUGHT_BY`` opens at or after the start of the
customer's first angry segment; any of them opening on a calm call flags it."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import yaml
from prometheus_client import CollectorRegistry

from stream import topics
from stream.events import CallEvent
from stream.frame import AudioFrame, encode_frame
from stream.redis_keys import LEGS
from stream.replay import load_call
from stream.settings import Settings
from workers import evidence as ev_mod
from workers.audio import encode_mulaw, to_analysis_rate
from workers.evidence import CallEvidence
from workers.metrics import WorkerMetrics
from workers.pairing import rule_metrics
from workers.pipeline import Pipeline, Record
from workers.rules import RuleEngine, RuleSet

CAUGHT_BY = ("customer_anger", "customer_negative", "sentiment_drop")
NEGATIVE = {"angry", "sad", "fearful", "disgust", "bored"}
CHUNK_S = 0.2
MAX_CALM_FLAGGED = 0.05     # on the tuning calls, keep a margin under the 0.1 target
MAX_NON_ESCALATION_FLAGGED = 0.1   # tense-at-rest, single-burst and angry-agent calls count too


def capture(calls_dir: Path, model_dir: str | None) -> list[dict]:
    from workers.inference import Models
    models = Models(model_dir)
    manifest = json.loads((calls_dir / "calls.json").read_text())
    if isinstance(manifest, dict):
        manifest = manifest.get("calls", [])
    rows: list[tuple[float, dict]] = []
    orig = CallEvidence.step

    def spy(self, t, info, cfg, hop_s):
        rows.append((t, {leg: (dict(i) if i else None) for leg, i in info.items()}))
        return orig(self, t, info, cfg, hop_s)

    CallEvidence.step = spy
    out = []
    try:
        for entry in manifest:
            call = load_call(str(calls_dir / entry["file"]), entry["call_id"])
            rows.clear()
            p = Pipeline(Settings(), models, models.emotion.labels, WorkerMetrics(CollectorRegistry()))
            cid = call.call_id
            recs = [Record(topics.EVENTS, cid.encode(), CallEvent(type="start", call_id=cid, ts=0.0, queue="q").to_bytes())]
            legs = {leg: to_analysis_rate(x, call.sample_rate) for leg, x in call.legs.items()}
            n = int(CHUNK_S * 8000)
            for seq, i in enumerate(range(0, len(legs["agent"]), n)):
                for leg in LEGS:
                    x = legs[leg][i:i + n]
                    if len(x) >= 80:
                        recs.append(Record(topics.AUDIO, cid.encode(), encode_frame(AudioFrame(cid, leg, seq, i / 8000, 8000, "mulaw", encode_mulaw(x)))))
            recs.append(Record(topics.EVENTS, cid.encode(), CallEvent(type="end", call_id=cid, ts=call.duration_s).to_bytes()))
            for k in range(0, len(recs), 64):
                p.process(recs[k:k + 64])
            steps = [[t, {leg: _slim(i) for leg, i in info.items()}] for t, info in rows]
            out.append({"call_id": cid, "type": entry.get("type", ""), "segments": entry["segments"], "steps": steps,
                        "meta": {k: v for k, v in entry.items() if k not in ("segments",)}})
            print(f"captured {cid} ({entry.get('type', '')}): {len(steps)} steps", file=sys.stderr)
    finally:
        CallEvidence.step = orig
    return out


def _slim(i: dict | None) -> dict | None:
    if not i:
        return None
    d = {"speech": i["speech"], "cap": None, "loud": None, "pause": i.get("pause")}
    if "e" in i:
        d.update(e=i["e"], s=i["s"], avg=i["avg"])
    return d


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


def platt(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> tuple[float, float]:
    """Logistic regression y ~ sigmoid(a x + b) by Newton's method (a small ridge keeps it finite when separable)."""
    a, b = 1.0, 0.0
    for _ in range(50):
        z = np.clip(a * x + b, -30, 30)
        p = 1 / (1 + np.exp(-z))
        g = np.array([np.sum((p - y) * x) + l2 * a, np.sum(p - y)])
        w = p * (1 - p)
        h = np.array([[np.sum(w * x * x) + l2, np.sum(w * x)], [np.sum(w * x), np.sum(w) + 1e-9]])
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-7:
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
        "anger.ref_abs": [0.3, 0.5, 0.7],
        "anger.ref_rel": [1.0, 2.0],
        "anger.spread_k": [0.0, 1.0],
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


def apply_to_file(path: Path, chosen: dict, how: str) -> None:
    """Write the chosen evidence section and rule thresholds into a commented rules file, keeping its comments."""
    import re
    text = path.read_text()
    ev = chosen["evidence"]
    block = ["evidence:", f"  # chosen by: {how}",
             f"  baseline_windows: {ev.get('baseline_windows', 8)}      # the leg's baseline: its first well-voiced windows",
             f"  warmup_windows: {ev.get('warmup_windows', 4)}         # before that many, prior_baseline stands in",
             "  calibration:",
             f"    fitted_on: {json.dumps(ev['calibration']['fitted_on'])}",
             f"    angry: {{a: {ev['calibration']['angry']['a']}, b: {ev['calibration']['angry']['b']}}}      # on logit(P(angry))",
             f"    negative: {{a: {ev['calibration']['negative']['a']}, b: {ev['calibration']['negative']['b']}}}   # on the sentiment score"]
    for sig in ("anger", "negative"):
        block.append(f"  {sig}: " + "{" + ", ".join(f"{k}: {v}" for k, v in ev.get(sig, {}).items()) + "}")
    text = re.sub(r"(?ms)^evidence:\n.*?(?=^rules:)", "\n".join(block) + "\n", text)
    for rule in chosen["rules"]:
        pattern = rf"(?ms)(^  - name: {rule['name']}\n.*?^    threshold: )([^\n]+)"
        text = re.sub(pattern, lambda m: m.group(1) + f"{rule['threshold']:g}", text, count=1)
        for c in rule.get("also", []):
            pattern = rf"(?ms)(^  - name: {rule['name']}\n.*?^      - {{metric: {c['metric']}, op: \"{c['op']}\", threshold: )([^}}]+)"
            text = re.sub(pattern, lambda m: m.group(1) + f"{c['threshold']:g}", text, count=1)
    RuleSet.from_yaml(text, str(path))      # still valid
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("calls_dir", type=Path)
    c.add_argument("--model-dir", default=None)
    c.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("tune")
    t.add_argument("scores", type=Path)
    t.add_argument("--rules", type=Path, default=Path("workers/default_rules.yaml"))
    t.add_argument("--fitted-on", default="")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--extra", type=Path, help="captured scores of further training-fold calls that must behave (not scored)")
    t.add_argument("--must-catch", nargs="*", default=[], help="call ids in --extra that must raise an escalation alert")
    t.add_argument("--must-quiet", nargs="*", default=[], help="call ids in --extra that must raise none")
    t.add_argument("--apply", type=Path, help="also write the choice into this commented rules file (keeps comments)")
    r = sub.add_parser("report")
    r.add_argument("scores", type=Path, nargs="+")
    r.add_argument("--rules", type=Path, default=Path("workers/default_rules.yaml"))
    r.add_argument("--per-call", action="store_true")
    a = ap.parse_args(argv)
    if a.cmd == "capture":
        a.out.write_text(json.dumps(capture(a.calls_dir, a.model_dir)))
    elif a.cmd == "tune":
        calls = json.loads(a.scores.read_text())
        doc = yaml.safe_load(a.rules.read_text())
        extra = json.loads(a.extra.read_text()) if a.extra else None
        best, result, n = tune(calls, doc, a.fitted_on or str(a.scores), extra=extra, catch=set(a.must_catch), quiet=set(a.must_quiet))
        a.out.write_text(yaml.safe_dump(best, sort_keys=False))
        print(json.dumps({"chosen": result, "combinations": n}, indent=1))
        if a.apply:
            how = f"scripts/tune_alerts.py tune {a.scores.name}: recall {result['recall']}, calm flagged {result['calm_flagged']}, non-escalation flagged {result['non_escalation_flagged']}"
            apply_to_file(a.apply, best, how)
    else:
        rs = RuleSet.load(a.rules)
        for path in a.scores:
            res = score(json.loads(path.read_text()), rs)
            if not a.per_call:
                res.pop("per_call")
            print(path, json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
