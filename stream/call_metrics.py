"""Call-level scores of one evaluation run: what the alerts did on labelled calls, and how well the per-step
scores matched the labelled customer segments. Pure functions over plain data, so a run through the real
stack and an in-process run are scored by the same code.

``calls``: the entries of ``calls.json`` (see the README, "Call-level evaluation").
``results``: call id -> {"alerts": [alert dicts, open and clear, in order], "timeline": [timeline entries]}.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

ESCALATION = "escalation"
CALM = "calm"
SENTIMENT_NEGATIVE_BELOW = -0.2   # a segment's mean sentiment below this reads "negative" (as the summary's outcome)
SENTIMENT_POSITIVE_ABOVE = 0.2
MIN_WINDOW_OVERLAP = 0.5          # a scored window belongs to a segment when at least this share of it lies inside
SECONDS_PER_HOUR = 3600.0


def opened(alerts: list[dict], rules: set[str]) -> list[tuple[float, str]]:
    """(call time, rule) of every alert that opened, for the given rules."""
    return [(float(a["t"]), a["rule"]) for a in alerts if a["state"] == "open" and a["rule"] in rules]


def double_opens(alerts: list[dict]) -> int:
    """Opens of a rule while an alert of that rule was still open in the same call (the contract: at most one)."""
    open_now: set[str] = set()
    bad = 0
    for a in alerts:
        if a["state"] == "open":
            bad += a["rule"] in open_now
            open_now.add(a["rule"])
        else:
            open_now.discard(a["rule"])
    return bad


def call_outcome(call: dict, alerts: list[dict], rules: set[str]) -> dict:
    """Per call: the escalation alerts, whether an escalation was caught and how fast, false alarms otherwise."""
    opens = opened(alerts, rules)
    first_angry = call.get("first_angry_customer_s")
    out = {"call_id": call["call_id"], "type": call.get("type", "unknown"), "corpus": call.get("corpus", ""),
           "duration_s": call["duration_s"], "alerts": [{"t": t, "rule": r} for t, r in opens],
           "double_opens": double_opens(alerts)}
    if out["type"] == ESCALATION:
        after = [t for t, _ in opens if first_angry is not None and t >= first_angry]
        out["caught"] = bool(after)
        out["seconds_to_alert"] = round(min(after) - first_angry, 2) if after else None
        out["false_alarms"] = len(opens) - len(after)        # before the customer's first angry turn
    else:
        out["false_alarms"] = len(opens)
    return out


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def alert_summary(outcomes: list[dict]) -> dict:
    """Escalation recall, share of calm (and of all non-escalation) calls flagged, false alarms per hour, latency."""
    esc = [o for o in outcomes if o["type"] == ESCALATION]
    quiet = [o for o in outcomes if o["type"] != ESCALATION]
    calm = [o for o in quiet if o["type"] == CALM]
    lat = [o["seconds_to_alert"] for o in esc if o["caught"]]
    by_type = {}
    for kind in sorted({o["type"] for o in outcomes}):
        group = [o for o in outcomes if o["type"] == kind]
        hours = sum(o["duration_s"] for o in group) / SECONDS_PER_HOUR
        fa = sum(o["false_alarms"] for o in group)
        by_type[kind] = {"calls": len(group), "flagged": sum(o["false_alarms"] > 0 for o in group), "false_alarms": fa,
                         "hours": round(hours, 3), "false_alarms_per_hour": round(fa / hours, 2) if hours else None}
    def per_hour(group: list[dict]) -> float | None:
        hours = sum(o["duration_s"] for o in group) / SECONDS_PER_HOUR
        return round(sum(o["false_alarms"] for o in group) / hours, 2) if hours else None
    return {
        "escalations": len(esc), "escalation_recall": _rate(sum(o["caught"] for o in esc), len(esc)),
        "calm_calls": len(calm), "calm_flagged_share": _rate(sum(o["false_alarms"] > 0 for o in calm), len(calm)),
        "false_alarms_per_hour_calm": per_hour(calm),
        "non_escalation_calls": len(quiet), "non_escalation_flagged_share": _rate(sum(o["false_alarms"] > 0 for o in quiet), len(quiet)),
        "false_alarms_per_hour_non_escalation": per_hour(quiet),
        "seconds_to_alert_median": round(float(np.median(lat)), 2) if lat else None,
        "seconds_to_alert_p90": round(float(np.percentile(lat, 90)), 2) if lat else None,
        "double_opens": sum(o["double_opens"] for o in outcomes),
        "by_type": by_type,
    }


def segment_predictions(call: dict, timeline: list[dict], window_s: float, leg: str = "customer") -> list[dict]:
    """Each labelled segment of ``leg`` with what the scored windows over it said: majority top emotion and
    mean sentiment (None when no scored window fell mostly inside it)."""
    steps = [(float(e["t"]), e) for e in timeline if e.get("leg") == leg and e.get("emotion")]
    out = []
    for seg in call["segments"]:
        if seg["leg"] != leg:
            continue
        a, b = seg["start_s"], seg["end_s"]
        inside = [e for t, e in steps if min(t, b) - max(t - window_s, a) >= MIN_WINDOW_OVERLAP * window_s]
        pred = {"start_s": a, "end_s": b, "emotion": seg["emotion"], "sentiment": seg.get("sentiment"), "windows": len(inside),
                "pred_emotion": None, "pred_sentiment": None, "mean_sentiment": None}
        if inside:
            votes = Counter(e["emotion"] for e in inside)
            weight = Counter()
            for e in inside:
                weight[e["emotion"]] += float(e.get("emotion_score") or 0)
            pred["pred_emotion"] = max(votes, key=lambda k: (votes[k], weight[k]))
            s = float(np.mean([float(e["sentiment"]) for e in inside]))
            pred["mean_sentiment"] = round(s, 3)
            pred["pred_sentiment"] = "negative" if s < SENTIMENT_NEGATIVE_BELOW else "positive" if s > SENTIMENT_POSITIVE_ABOVE else "neutral"
        out.append(pred)
    return out


def balanced_accuracy(truth: list[str], pred: list[str]) -> float | None:
    """Mean recall over the true classes present (unweighted accuracy)."""
    classes = sorted(set(truth))
    if not classes:
        return None
    recalls = [np.mean([p == c for t, p in zip(truth, pred) if t == c]) for c in classes]
    return round(float(np.mean(recalls)), 4)


def segment_summary(segments: list[dict], emotion_labels: tuple[str, ...] | None = None) -> dict:
    """Balanced accuracy of segment emotion (true emotions the model has a class for) and sentiment (segments
    with a sentiment label); segments without a scored window count as wrong, and their share is reported."""
    scored = [s for s in segments if s["windows"]]
    emo = [s for s in segments if emotion_labels is None or s["emotion"] in emotion_labels]
    sen = [s for s in segments if s.get("sentiment")]
    return {
        "segments": len(segments), "segments_scored_share": _rate(len(scored), len(segments)),
        "emotion_balanced_accuracy": balanced_accuracy([s["emotion"] for s in emo], [s["pred_emotion"] for s in emo]),
        "emotion_classes": sorted({s["emotion"] for s in emo}),
        "emotion_recall": {c: round(float(np.mean([s["pred_emotion"] == c for s in emo if s["emotion"] == c])), 3)
                           for c in sorted({s["emotion"] for s in emo})},
        "sentiment_balanced_accuracy": balanced_accuracy([s["sentiment"] for s in sen], [s["pred_sentiment"] for s in sen]),
        "sentiment_classes": sorted({s["sentiment"] for s in sen}),
    }


def score_calls(calls: list[dict], results: dict[str, dict], rules: set[str], window_s: float = 2.0,
                emotion_labels: tuple[str, ...] | None = None) -> dict:
    """The whole report: per call, overall, and per corpus."""
    per_call, segs_by_corpus = [], {}
    for call in calls:
        res = results[call["call_id"]]
        o = call_outcome(call, res["alerts"], rules)
        segs = segment_predictions(call, res["timeline"], window_s)
        o["segments"] = segment_summary(segs, emotion_labels)
        per_call.append(o)
        segs_by_corpus.setdefault(call.get("corpus", ""), []).extend(segs)
    every = [s for v in segs_by_corpus.values() for s in v]
    corpora = {c: {**alert_summary([o for o in per_call if o["corpus"] == c]), "segments": segment_summary(v, emotion_labels)}
               for c, v in sorted(segs_by_corpus.items())}
    return {"alert_rules": sorted(rules), "overall": {**alert_summary(per_call), "segments": segment_summary(every, emotion_labels)},
            "by_corpus": corpora, "calls": per_call}
