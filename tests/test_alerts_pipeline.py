"""The default alert rules on the shipped sample calls (real clips), through the real core and models.

The conversation rules (silence, overtalk) depend on the VAD only, so their timing is checked exactly against
the calls' ground truth; the score rules depend on the models and are checked for consistency, not timing."""

import os

import pytest
from prometheus_client import CollectorRegistry

from stream import topics
from stream.events import CallEvent
from stream.frame import AudioFrame, encode_frame
from stream.replay import load_sample_calls, sample_calls_dir
from stream.settings import Settings
from workers.audio import encode_mulaw
from workers.inference import Models
from workers.metrics import WorkerMetrics
from workers.pipeline import Pipeline, Record
from workers.rules import RuleEngine, RuleSet
import json

RULES = os.path.join(os.path.dirname(__file__), "..", "workers", "default_rules.yaml")
MANIFEST = {m["call_id"]: m for m in json.loads((sample_calls_dir() / "calls.json").read_text())}


@pytest.fixture(scope="module")
def outcomes():
    models = Models(os.environ.get("CALLPULSE_MODEL_DIR") or None)
    out = {}
    for call in load_sample_calls():
        m = WorkerMetrics(CollectorRegistry())
        p = Pipeline(Settings(), models, models.emotion.labels, m, RuleEngine(RuleSet.load(RULES)))
        recs = [Record(topics.EVENTS, call.call_id.encode(), CallEvent(type="start", call_id=call.call_id, ts=0.0, queue="q").to_bytes())]
        n = 1600
        for seq, i in enumerate(range(0, len(call.legs["agent"]), n)):
            for leg in ("agent", "customer"):
                x = call.legs[leg][i:i + n]
                if len(x) >= 160:
                    recs.append(Record(topics.AUDIO, call.call_id.encode(), encode_frame(AudioFrame(call.call_id, leg, seq, i / 8000, 8000, "mulaw", encode_mulaw(x)))))
        recs.append(Record(topics.EVENTS, call.call_id.encode(), CallEvent(type="end", call_id=call.call_id, ts=call.duration_s).to_bytes()))
        alerts, summary = [], None
        for k in range(0, len(recs), 50):
            r = p.process(recs[k:k + 50])
            alerts += r.alerts
            summary = summary or (r.summaries[0] if r.summaries else None)
        out[call.call_id] = (alerts, summary, m)
    return out


def hold(call_id):
    """(start, end) of the longest stretch with no speech segment on either leg, from the ground truth."""
    segs = sorted(MANIFEST[call_id]["segments"], key=lambda s: s["start_s"])
    best, end = (0.0, 0.0), 0.0
    for s in segs:
        if s["start_s"] - end > best[1] - best[0]:
            best = (end, s["start_s"])
        end = max(end, s["end_s"])
    return best


def test_long_silence_opens_30_s_into_the_hold_and_clears_when_speech_resumes(outcomes):
    alerts, summary, _ = outcomes["demo-en-silence"]
    start, end = hold("demo-en-silence")
    silence = [a for a in alerts if a.rule == "long_silence"]
    assert [a.state for a in silence] == ["open", "clear"]
    assert start + 30 <= silence[0].t <= start + 32.5
    assert end <= silence[1].t <= end + 1.5
    assert silence[0].alert_id == silence[1].alert_id
    assert summary["longest_silence_s"] == pytest.approx(end - start, abs=1.0)


def test_the_overtalk_burst_raises_one_overtalk_alert(outcomes):
    alerts, summary, _ = outcomes["demo-en-silence"]
    over = [a for a in alerts if a.rule == "overtalk" and a.state == "open"]
    assert len(over) == 1
    assert summary["overtalk_s"] > 5


@pytest.mark.parametrize("call_id", ["demo-it-angry", "demo-en-happy"])
def test_no_silence_or_overtalk_alerts_where_there_is_none(outcomes, call_id):
    alerts, summary, _ = outcomes[call_id]
    assert not [a for a in alerts if a.rule in ("long_silence", "overtalk")]
    assert summary["longest_silence_s"] < 5


def test_alerts_are_consistent_and_counted(outcomes):
    for call_id, (alerts, summary, m) in outcomes.items():
        opened = [a for a in alerts if a.state == "open"]
        assert summary["alerts"] == len(opened)
        assert sorted(summary["alert_rules"]) == sorted({a.rule for a in opened})
        per_rule = {}
        for a in alerts:      # open/clear alternate per rule: never two opens in a row (no storms)
            assert per_rule.get(a.rule) != a.state, f"{call_id}: {a.rule} {a.state} twice in a row"
            per_rule[a.rule] = a.state
        total = sum(m.alerts.labels(r, s, "q")._value.get() for r, s in {(a.rule, a.severity) for a in opened})
        assert total == len(opened)
