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


def _customer_segments(call_id, emotion):
    return [s for s in MANIFEST[call_id]["segments"] if s["leg"] == "customer" and s["emotion"] == emotion]


def test_the_angry_sample_call_alerts_on_anger_with_its_evidence_and_the_calm_ones_stay_quiet(outcomes):
    """The demo's promise, in-process: the angry call raises customer_anger within 20 s of the customer's first
    angry turn, carrying the turns that built the evidence; the happy and the silence calls raise no customer alert."""
    alerts, _, _ = outcomes["demo-it-angry"]
    anger = [a for a in alerts if a.rule == "customer_anger" and a.state == "open"]
    first = min(s["start_s"] for s in _customer_segments("demo-it-angry", "angry"))
    assert len(anger) == 1 and first < anger[0].t <= first + 20
    ev = anger[0].evidence
    angry_spans = [(s["start_s"], s["end_s"]) for s in _customer_segments("demo-it-angry", "angry")]
    assert ev["metric"] == "customer_anger_evidence" and ev["level"] > ev.get("threshold", 0)
    # every span of evidence covers angry customer speech, and none starts before the customer's first angry turn
    # (less the model's 2 s window)
    assert ev["spans"] and all(any(s0 < b and a < s1 for a, b in angry_spans) for s0, s1 in ev["spans"])
    assert min(s0 for s0, _ in ev["spans"]) >= first - 2.0 and max(s1 for _, s1 in ev["spans"]) <= anger[0].t
    assert ev["baseline_ready"] and ev["baseline"] < 0.5 < ev["peak"]
    for quiet in ("demo-en-happy", "demo-en-silence"):
        assert not [a for a in outcomes[quiet][0] if a.leg == "customer"], quiet


@pytest.mark.integration
def test_an_escalation_and_a_calm_call_through_the_real_stack(stack, worker_env, redis_client):
    """The sample escalation (demo-it-angry) and calm call (demo-en-happy) replayed through the real broker, a
    worker process and Redis: the first raises customer_anger with its evidence in cp:alerts, on calls.alerts and
    in the call hash; the second raises no alert at all."""
    import time as _time

    from kafka import KafkaConsumer

    from stream.producer import CallProducer
    from stream.redis_keys import Keys
    from stream.replay import replay
    from support import WorkerProcess, wait_for

    keys = Keys("cp")
    calls = [c for c in load_sample_calls("-it") if c.call_id.rsplit("-", 1)[0] in ("demo-it-angry", "demo-en-happy")]
    worker = WorkerProcess(worker_env).start()
    try:
        with CallProducer(stack.bootstrap_servers) as p:
            replay(p, calls, speed=8.0, chunk_ms=200, t0=_time.time())
        for c in calls:
            wait_for(lambda: redis_client.get(keys.summary(c.call_id)), 90, what=f"summary of {c.call_id}")
        events = [e for _, e in redis_client.xrange(keys.alerts)]
        angry, happy = (next(c.call_id for c in calls if c.call_id.startswith(k)) for k in ("demo-it-angry", "demo-en-happy"))
        opened = [e for e in events if e["call_id"] == angry and e["rule"] == "customer_anger" and e["state"] == "open"]
        assert len(opened) == 1
        ev = json.loads(opened[0]["evidence"])
        assert ev["metric"] == "customer_anger_evidence" and ev["spans"] and ev["level"] > float(opened[0]["threshold"])
        assert not [e for e in events if e["call_id"] == happy]
        log = json.loads(redis_client.hget(keys.call(angry), "alert_log"))
        in_hash = [a for a in log if a["rule"] == "customer_anger"]
        assert len(in_hash) == 1 and in_hash[0]["evidence"]["spans"] == ev["spans"]
        consumer = KafkaConsumer("calls.alerts", bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest",
                                 consumer_timeout_ms=8000, enable_auto_commit=False)
        kafka = [json.loads(m.value) for m in consumer]
        consumer.close()
        k_open = [a for a in kafka if a["call_id"] == angry and a["rule"] == "customer_anger" and a["state"] == "open"]
        assert len(k_open) == 1 and k_open[0]["evidence"]["spans"] == ev["spans"]
        assert not [a for a in kafka if a["call_id"] == happy]
    finally:
        worker.stop()
