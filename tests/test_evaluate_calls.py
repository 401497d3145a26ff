"""callpulse evaluate-calls: the call-level arithmetic on a hand-made call set, the offline threshold sweep on
scripted steps, and the shipped evaluation calls through the real embedded stack against the in-process run."""

import json
from pathlib import Path

import pytest

from stream.call_metrics import balanced_accuracy, score_calls, segment_predictions
from stream.call_sweep import alert_key, rerun, sweep
from stream.evaluate_calls import read_call_set
from workers.rules import RuleSet

ROOT = Path(__file__).resolve().parents[1]
RULES = {"customer_anger", "customer_negative"}


def seg(leg, emotion, a, b, sentiment=None):
    return {"leg": leg, "emotion": emotion, "start_s": a, "end_s": b, "sentiment": sentiment}


def alert(rule, state, t):
    return {"rule": rule, "state": state, "t": t}


def hand_made():
    """Three escalations (caught after 12 s, caught after 30 s with an earlier false alarm, missed), two calm calls
    of 30 min each (one with two anger alerts), one tense call with an overtalk alert only (not an escalation rule)."""
    calls = [
        {"call_id": "e1", "type": "escalation", "duration_s": 60, "first_angry_customer_s": 20.0, "segments": [seg("customer", "angry", 20, 26, "negative")]},
        {"call_id": "e2", "type": "escalation", "duration_s": 60, "first_angry_customer_s": 10.0, "segments": []},
        {"call_id": "e3", "type": "escalation", "duration_s": 60, "first_angry_customer_s": 10.0, "segments": []},
        {"call_id": "c1", "type": "calm", "duration_s": 1800, "segments": []},
        {"call_id": "c2", "type": "calm", "duration_s": 1800, "segments": []},
        {"call_id": "t1", "type": "tense_calm", "duration_s": 600, "segments": []},
    ]
    results = {
        "e1": {"alerts": [alert("customer_anger", "open", 32.0), alert("customer_anger", "clear", 50.0)], "timeline": []},
        "e2": {"alerts": [alert("customer_negative", "open", 5.0), alert("customer_anger", "open", 40.0),
                          alert("customer_anger", "open", 45.0)], "timeline": []},
        "e3": {"alerts": [], "timeline": []},
        "c1": {"alerts": [alert("customer_anger", "open", 100.0), alert("customer_anger", "clear", 200.0),
                          alert("customer_anger", "open", 900.0)], "timeline": []},
        "c2": {"alerts": [], "timeline": []},
        "t1": {"alerts": [alert("overtalk", "open", 50.0)], "timeline": []},
    }
    return calls, results


def test_recall_false_alarms_and_latency_arithmetic():
    calls, results = hand_made()
    r = score_calls(calls, results, RULES)
    o = r["overall"]
    assert o["escalations"] == 3 and o["escalation_recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert o["seconds_to_alert_median"] == 21.0                     # 12 s and 30 s
    assert o["seconds_to_alert_p90"] == pytest.approx(12 + 0.9 * 18)
    assert o["calm_calls"] == 2 and o["calm_flagged_share"] == 0.5
    assert o["false_alarms_per_hour_calm"] == 2.0                   # two opens in one hour of calm audio
    assert o["non_escalation_calls"] == 3 and o["non_escalation_flagged_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert o["false_alarms_per_hour_non_escalation"] == pytest.approx(2 / 1.1667, abs=0.01)
    assert o["double_opens"] == 1, "e2 opened customer_anger twice without a clear"
    by_call = {c["call_id"]: c for c in r["calls"]}
    assert by_call["e2"]["false_alarms"] == 1 and by_call["e2"]["seconds_to_alert"] == 30.0
    assert by_call["e3"]["caught"] is False and by_call["t1"]["false_alarms"] == 0
    assert o["by_type"]["calm"] == {"calls": 2, "flagged": 1, "false_alarms": 2, "hours": 1.0, "false_alarms_per_hour": 2.0}


def test_segment_scores_from_the_timeline():
    call = {"segments": [seg("customer", "angry", 10.0, 14.0, "negative"), seg("customer", "happy", 20.0, 22.0, "positive"),
                         seg("customer", "neutral", 30.0, 31.0, "neutral"), seg("agent", "neutral", 0.0, 9.0, "neutral")]}
    def step(t, emotion, score, sentiment, leg="customer"):
        return {"t": str(t), "leg": leg, "emotion": emotion, "emotion_score": str(score), "sentiment": str(sentiment)}
    timeline = [step(11, "angry", 0.5, -0.6), step(12, "angry", 0.6, -0.5), step(13, "sad", 0.9, -0.7), step(14, "sad", 0.4, -0.1),
                step(15, "angry", 0.99, -0.9),            # window [13, 15]: half inside the angry segment, counts
                step(16, "happy", 0.99, 0.9),             # window [14, 16]: outside
                step(21, "neutral", 0.5, 0.1), step(22, "happy", 0.4, 0.5), step(5, "angry", 0.9, -0.9, leg="agent"),
                {"t": "31", "leg": "customer", "speech": "0.10"}]   # a step with no scored window
    segs = segment_predictions(call, timeline, window_s=2.0)
    assert [s["windows"] for s in segs] == [5, 2, 0]
    assert segs[0]["pred_emotion"] == "angry" and segs[0]["pred_sentiment"] == "negative"
    assert segs[1]["pred_emotion"] == "neutral", "a tied vote goes to the larger summed probability (0.5 against 0.4)"
    assert segs[1]["mean_sentiment"] == 0.3 and segs[1]["pred_sentiment"] == "positive"
    assert segs[2]["pred_emotion"] is None
    assert balanced_accuracy(["a", "a", "b"], ["a", "x", "b"]) == 0.75
    from stream.call_metrics import segment_summary
    summary = segment_summary(segs)
    assert summary["emotion_recall"] == {"angry": 1.0, "happy": 0.0, "neutral": 0.0}, "the unscored neutral segment counts as missed"
    assert summary["emotion_balanced_accuracy"] == pytest.approx(1 / 3, abs=1e-4) and summary["segments_scored_share"] == pytest.approx(2 / 3, abs=1e-4)


RULE_YAML = """
rules:
  - {name: customer_anger, severity: warning, leg: customer, metric: customer_angry, op: ">", threshold: 0.6, for_s: 3, clear_threshold: 0.4, clear_for_s: 2, cooldown_s: 30}
"""


def scripted_steps():
    esc = [(float(t), 1e9 + t, {"customer_angry": 0.1 if t < 10 else 0.7}) for t in range(1, 30)]
    calm = [(float(t), 1e9 + t, {"customer_angry": 0.5 if 5 <= t < 12 else 0.1}) for t in range(1, 30)]
    calls = [{"call_id": "e", "type": "escalation", "duration_s": 30, "first_angry_customer_s": 9.0, "segments": []},
             {"call_id": "c", "type": "calm", "duration_s": 30, "segments": []}]
    return calls, {"e": esc, "c": calm}


def test_offline_rerun_and_threshold_sweep():
    calls, steps = scripted_steps()
    rules = RuleSet.from_yaml(RULE_YAML)
    events = rerun(rules, steps)
    assert alert_key(events["e"]) == [("customer_anger", "open", 12.0)] and events["c"] == []
    s = sweep(calls, steps, rules, "customer_anger", {"customer_anger"}, [0.05, 0.3, 0.6, 0.8])
    by = {p["threshold"]: p for p in s["points"]}
    assert by[0.6]["escalation_recall"] == 1.0 and by[0.6]["calm_flagged_share"] == 0.0
    assert by[0.8]["escalation_recall"] == 0.0, "nothing reaches 0.8"
    assert by[0.3]["calm_flagged_share"] == 1.0 and by[0.3]["escalation_recall"] == 1.0
    assert by[0.05]["escalation_recall"] == 0.0, "at 0.05 the alert opens at t=3, before the first angry turn: a false alarm"
    assert by[0.05]["calm_flagged_share"] == 1.0
    with pytest.raises(ValueError, match="no rule named"):
        sweep(calls, steps, rules, "nope", {"customer_anger"})


def test_call_set_errors_are_explicit(tmp_path):
    with pytest.raises(FileNotFoundError, match="calls.json"):
        read_call_set(tmp_path)
    (tmp_path / "calls.json").write_text(json.dumps([{"call_id": "x", "file": "x.wav", "duration_s": 1, "segments": [{"leg": "boss"}]}]))
    with pytest.raises(ValueError, match="leg"):
        read_call_set(tmp_path)
    (tmp_path / "calls.json").write_text(json.dumps({"calls": [{"call_id": "x", "file": "x.wav", "duration_s": 1, "segments": []}]}))
    with pytest.raises(FileNotFoundError, match="x.wav"):
        read_call_set(tmp_path)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_shipped_calls_through_the_real_stack_match_the_in_process_run(tmp_path, capsys):
    from stream.cli import main
    out = tmp_path / "eval"
    assert main(["evaluate-calls", str(ROOT / "stream" / "samples" / "eval"), "--compare", "--speed", "0",
                 "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["compare"] == {"calls_with_identical_alerts": 2, "calls_with_identical_timelines": 2, "calls": 2, "differ": []}
    assert report["truncated_calls"] == []
    assert {c["type"] for c in report["calls"]} == {"escalation", "calm"}
    seg = report["overall"]["segments"]
    assert seg["segments_scored_share"] > 0.9, "the timeline read back from Redis covers the labelled customer turns"
    assert seg == report["in_process"]["segments"], "Redis timeline and in-process timeline score the same"
    assert report["overall"]["double_opens"] == 0
    steps = (out / "steps.jsonl").read_text().splitlines()
    assert len(steps) > 100 and "customer_angry" in steps[-1]
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["escalation_recall"] == report["overall"]["escalation_recall"]


def test_markdown_table_counts_calls():
    from stream.call_table import table
    calls, results = hand_made()
    for c in calls:
        c["corpus"] = "emovo"
    report = {"dir": "/x/test_heldout", **score_calls(calls, results, RULES)}
    lines = table([("before", report)]).splitlines()
    assert len(lines) == 4   # header, rule, overall, emovo
    cells = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert cells[:8] == ["before", "test_heldout", "all", "2/3", "1/2", "0/1", "2.0", "21, 28"]   # p90 28.2 s


def test_truncated_calls_are_the_ones_whose_timeline_stops_early():
    from stream.call_runs import truncated_calls
    calls = [{"call_id": "a", "duration_s": 30.4}, {"call_id": "b", "duration_s": 30.4}, {"call_id": "c", "duration_s": 5}]
    results = {"a": {"timeline": [{"t": "29"}, {"t": "30"}]}, "b": {"timeline": [{"t": "12"}]}, "c": {"timeline": []}}
    assert truncated_calls(calls, results) == ["b", "c"]
