"""Issue 17, the core: every poison message of the issue, in ONE batch with normal calls, ends in the dead
letters with its reason; the neighbours in the batch get their summaries; nothing raises or hangs; no
non-finite number reaches a summary, a hash or a Prometheus sample."""

import json
import math

import numpy as np
from prometheus_client import CollectorRegistry

from stream import topics
from stream.events import CallEvent
from stream.frame import HEADER, AudioFrame, encode_frame
from test_leg_audio import time_limit
from test_pipeline import T0, Clock, call_records, make_pipeline, models  # noqa: F401  (models is a fixture)
from stream.settings import Settings
from workers.audio import encode_mulaw
from workers.metrics import WorkerMetrics
from workers.pipeline import Pipeline, Record

CHUNK_S = 0.2


def frame(call_id, leg, seq, ts, n=1600):
    return encode_frame(AudioFrame(call_id, leg, seq, ts, 8000, "mulaw", encode_mulaw(np.zeros(n, np.float32))))


def clock_step_call(call_id="clk"):
    """The freeze of the issue through the core: seq 1 lost, seq 3 captured 2.4 s before seq 2, then the end."""
    recs = [Record(topics.EVENTS, call_id.encode(), CallEvent(type="start", call_id=call_id, ts=T0).to_bytes())]
    for leg in ("agent", "customer"):
        for seq, ts in ((0, T0), (2, T0 + 0.4), (3, T0 - 2.0)):
            recs.append(Record(topics.AUDIO, call_id.encode(), frame(call_id, leg, seq, ts)))
    recs.append(Record(topics.EVENTS, call_id.encode(), CallEvent(type="end", call_id=call_id, ts=T0 + 0.8).to_bytes()))
    return recs


def oversized_frame(call_id="c1"):
    """1,000,100 bytes: the broker takes it, our producer (1 MB requests) could not send it back as it is."""
    payload = b"\x7f" * (1_000_100 - HEADER.size - len(call_id))
    header = HEADER.pack(b"CP", 1, 0, 1, len(call_id), 8000, 99, int(T0 * 1e6), len(payload))
    return header + call_id.encode() + payload


def poison():
    """(record, expected reason): every bad message of the issue."""
    good_frame = frame("c1", "agent", 500, T0 + 100)
    return [
        (Record(topics.EVENTS, b"c1", None), "bad_event"),                                        # tombstone
        (Record(topics.EVENTS, b"c1", b"[" * 100_000), "bad_event"),                              # RecursionError
        (Record(topics.EVENTS, b"c1", b'{"type": "end", "call_id": "c1", "ts": NaN}'), "bad_timestamp"),
        (Record(topics.EVENTS, b"inf", b'{"type": "start", "call_id": "inf", "ts": -Infinity}'), "bad_timestamp"),
        (Record(topics.EVENTS, b"c2", json.dumps({"type": "end", "call_id": "c2", "ts": T0 + 3 * 86_400}).encode()), "bad_timestamp"),
        (Record(topics.AUDIO, b"c1", oversized_frame()), "oversized"),
        (Record(topics.AUDIO, None, good_frame), "key_mismatch"),                                # no key
        (Record(topics.AUDIO, b"c\xff1", good_frame), "key_mismatch"),                           # non-UTF-8 key
        (Record(topics.AUDIO, None, None), "malformed"),                                         # audio tombstone
        (Record(topics.EVENTS, b"c2", CallEvent(type="end", call_id="c1", ts=T0 + 6).to_bytes()), "key_mismatch"),
        (Record(topics.EVENTS, None, CallEvent(type="end", call_id="c1", ts=T0 + 6).to_bytes()), "key_mismatch"),
        (Record(topics.EVENTS, b"e" * 33, json.dumps({"type": "start", "call_id": "\u00e9" * 33, "ts": T0}).encode()), "bad_event"),
    ]




def test_every_poison_message_is_dead_lettered_and_its_neighbours_finish(models):
    registry = CollectorRegistry()
    m = WorkerMetrics(registry)
    clock = Clock()
    p = Pipeline(Settings(), models, models.emotion.labels, m, clock=clock)
    bad = poison()
    c1, c2, colon = call_records("c1", duration=6.0), call_records("c2", duration=6.0), call_records("x:timeline", duration=6.0)
    records = c1[:20] + c2[:10] + [r for r, _ in bad[:6]] + c2[10:] + clock_step_call() + [r for r, _ in bad[6:]] + colon + c1[20:]
    for i, r in enumerate(records):
        r.token, r.partition = i, 0
    with time_limit(60.0):
        out = p.process(records)
        clock.t += 4.0                 # past the end grace: the clock-step call ends with a hole still open
        later = p.process([])
    assert [s["call_id"] for s in later.summaries] == ["clk"] and not later.dead
    out.summaries += later.summaries
    out.acks += later.acks
    got = {id(d.record): d.reason for d in out.dead}
    for rec, reason in bad:
        assert got.get(id(rec)) == reason, (rec.value[:80] if rec.value else rec.value, got.get(id(rec)), reason)
    assert len(out.dead) == len(bad)
    assert {s["call_id"] for s in out.summaries} == {"c1", "c2", "clk", "x:timeline"}
    assert sorted(out.acks) == list(range(len(records))), "every message is acknowledged: a result or a dead letter"
    for s in out.summaries:
        assert all(not isinstance(v, float) or math.isfinite(v) for v in s.values()), s
        assert 0 <= s["duration_s"] < 60
    assert all(math.isfinite(float(v)) for f in out.call_fields.values() for k, v in f.items()
               if k.endswith("_s") or k == "risk")
    non_finite = [(s.name, s.value) for fam in registry.collect() for s in fam.samples if not math.isfinite(s.value)
                  and not s.name.endswith("_bucket")]
    assert non_finite == []
    assert m.bad_input.labels("bad_timestamp")._value.get() == 3
    assert m.bad_input.labels("key_mismatch")._value.get() == 4


def test_an_unexpected_error_on_one_record_costs_that_record_only(models, monkeypatch):
    p, m = make_pipeline(models)
    real_push = p.ingest.push

    def push(call, rec, frame, now):
        if call.call_id == "boom" and frame.seq == 3:
            raise ZeroDivisionError("a bug the tests did not foresee")
        return real_push(call, rec, frame, now)

    monkeypatch.setattr(p.ingest, "push", push)
    boom, ok = call_records("boom", duration=6.0), call_records("ok", duration=6.0)
    records = [r for pair in zip(boom, ok) for r in pair] + boom[len(ok):] + ok[len(boom):]
    for i, r in enumerate(records):
        r.token = i
    out = p.process(records)
    assert [d.reason for d in out.dead] == ["internal_error", "internal_error"]     # seq 3 of both legs
    assert all("ZeroDivisionError: a bug the tests did not foresee" in d.message for d in out.dead)
    assert {s["call_id"] for s in out.summaries} == {"boom", "ok"}
    assert sorted(out.acks) == list(range(len(records)))
    assert m.bad_input.labels("internal_error")._value.get() == 2
