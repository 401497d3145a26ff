"""The pure core with the real shipped ONNX models: metrics against ground truth, idempotence, recovery, bad input."""

import json
import os

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from stream import topics
from stream.events import CallEvent
from stream.frame import AudioFrame, decode_frame, encode_frame
from stream.redis_keys import STATE_FIELD
from stream.settings import Settings
from tests.support import frames_for, tone_leg
from workers.inference import Models
from workers.metrics import WorkerMetrics
from workers.pipeline import Pipeline, Record
from workers.rules import RuleEngine, RuleSet

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def models():
    return Models(os.environ.get("CALLPULSE_MODEL_DIR") or None)


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t


TEST_RULES = """
rules:
  - {name: customer_talks, severity: info, leg: customer, metric: customer_speech, op: ">", threshold: 0.5, for_s: 2, clear_threshold: 0.1}
  - {name: agent_mood_swing, severity: warning, leg: agent, metric: agent_sentiment_avg, aggregate: drop_over, within_s: 10, op: ">", threshold: 0.0001}
  - {name: overtalk, severity: info, metric: overtalk_step_s, aggregate: sum_over, within_s: 10, op: ">", threshold: 0.5, clear_threshold: 0.2}
"""


def make_pipeline(models, clock=None, rules=False, **settings):
    m = WorkerMetrics(CollectorRegistry())
    engine = RuleEngine(RuleSet.from_yaml(TEST_RULES)) if rules else None
    p = Pipeline(Settings(**settings), models, models.emotion.labels, m, engine, clock=clock or Clock())
    return p, m


def call_records(call_id="c1", duration=20.0, agent=((0, 5), (9, 12)), customer=((4, 8), (11, 15)), end=True, queue="billing", t0=T0):
    legs = {"agent": tone_leg(list(agent), duration, seed=1), "customer": tone_leg(list(customer), duration, seed=2)}
    recs = [Record(topics.EVENTS, call_id.encode(), CallEvent(type="start", call_id=call_id, ts=t0, queue=queue, agent_id="a7").to_bytes())]
    for leg, seq, data in frames_for(call_id, legs, t0=t0):
        recs.append(Record(topics.AUDIO, call_id.encode(), data))
    if end:
        recs.append(Record(topics.EVENTS, call_id.encode(), CallEvent(type="end", call_id=call_id, ts=t0 + duration).to_bytes()))
    for i, r in enumerate(recs):
        r.token = i
        r.partition = 0
    return recs


def run(p, recs, batch=37):
    results = []
    for i in range(0, len(recs), batch):
        results.append(p.process(recs[i:i + batch]))
    return results


def summary_of(results, call_id="c1"):
    return next(s for r in results for s in r.summaries if s["call_id"] == call_id)


def test_conversation_metrics_match_the_script(models):
    p, m = make_pipeline(models)
    results = run(p, call_records())
    s = summary_of(results)
    hang = 0.16  # VAD hangover after each talk spurt
    assert s["agent_speech_s"] == pytest.approx(8 + 2 * hang, abs=0.1)
    assert s["customer_speech_s"] == pytest.approx(8 + 2 * hang, abs=0.1)
    assert s["overtalk_s"] == pytest.approx(2 + 2 * hang, abs=0.1)          # [4,5] and [11,12]
    assert s["silence_s"] == pytest.approx(6 - 2 * hang, abs=0.1)           # [8,9] and [15,20]
    assert s["longest_silence_s"] == pytest.approx(5 - hang, abs=0.1)
    assert (s["interruptions_agent"], s["interruptions_customer"]) == (0, 2)
    assert s["duration_s"] == 20.0 and s["end_reason"] == "event" and s["queue"] == "billing"
    assert s["customer_sentiment_mean"] is not None and -1 <= s["customer_sentiment_mean"] <= 1
    assert s["customer_dominant_emotion"] in models.emotion.labels
    every = sorted(t for r in results for t in r.acks)
    assert every == list(range(len(call_records()))), "every message is acknowledged exactly once"
    assert m.chunks.labels("agent")._value.get() == 100
    assert m.windows.labels("agent", "true")._value.get() + m.windows.labels("agent", "false")._value.get() == 20
    assert not p.calls and "c1" in p.ended


def test_silent_steps_are_not_scored(models):
    p, m = make_pipeline(models)
    run(p, call_records(agent=[(0, 3)], customer=[]))
    assert m.windows.labels("customer", "true")._value.get() == 0
    assert 3 <= m.windows.labels("agent", "true")._value.get() <= 5


def normalised(s):
    return {k: v for k, v in s.items()}


def alerts_of(results):
    return [(a.t, a.rule, a.state, a.value) for r in results for a in r.alerts]


def test_duplicates_and_reordering_change_nothing(models):
    clean_results = run(make_pipeline(models, rules=True)[0], call_records())
    clean = summary_of(clean_results)
    assert clean["alerts"] >= 3, "the test rules must fire for this test to mean anything"
    recs = call_records()
    rng = np.random.default_rng(3)
    audio = list(range(1, len(recs) - 1))
    messy = [recs[0]]
    for i in range(0, len(audio), 6):                      # shuffle within 600 ms windows, duplicate 20 %
        block = audio[i:i + 6]
        rng.shuffle(block)
        for j in block:
            messy.append(recs[j])
            if rng.random() < 0.2:
                messy.append(recs[j])
    messy.append(recs[-1])
    p, m = make_pipeline(models, rules=True)
    messy_results = run(p, messy, batch=5)
    assert summary_of(messy_results) == clean
    assert alerts_of(messy_results) == alerts_of(clean_results)
    assert m.chunks_dropped.labels("duplicate")._value.get() + m.chunks_dropped.labels("stale")._value.get() == len(messy) - len(recs)


@pytest.mark.parametrize("cut", [40, 97, 151])
def test_restore_from_saved_state_after_a_crash_gives_the_same_call(models, cut):
    """Simulate a crash after the batch ending at ``cut``: the new worker restores the Redis hash and re-reads
    from the committed offset (the first unacknowledged message). Nothing is lost or counted twice."""
    recs = call_records()
    clean_results = run(make_pipeline(models, rules=True)[0], recs)
    clean = summary_of(clean_results)
    p1, _ = make_pipeline(models, rules=True)
    acked: set[int] = set()
    saved = {}
    before = []
    for i in range(0, cut, 10):
        out = p1.process(recs[i:min(i + 10, cut)])
        acked.update(out.acks)
        saved.update(out.call_fields.get("c1", {}))
        before.append(out)
    committed = min(set(range(len(recs))) - acked)
    assert committed > 0, "some messages must have been committed for this test to mean anything"
    p2, m2 = make_pipeline(models, rules=True)
    assert p2.needs_lookup("c1")
    p2.restore("c1", saved)
    results = run(p2, recs[committed:], batch=10)
    assert summary_of(results) == clean
    assert alerts_of(before) + alerts_of(results) == alerts_of(clean_results), "no alert lost or raised twice"
    assert m2.calls_restored._value.get() == 1


def test_saved_state_is_derived_numbers_only(models):
    p, _ = make_pipeline(models)
    out = p.process(call_records(end=False)[:60])
    state = out.call_fields["c1"][STATE_FIELD]
    assert len(state) < 8000
    d = json.loads(state)
    assert set(d) >= {"anchor", "scores", "conv", "vad"}
    # no audio: nothing array-like longer than the per-step masks and trend
    def longest_list(x):
        if isinstance(x, list):
            return max([len(x)] + [longest_list(v) for v in x])
        if isinstance(x, dict):
            return max([0] + [longest_list(v) for v in x.values()])
        return 0
    assert longest_list(d) <= 60


def test_bad_input_goes_to_the_dead_letter_list_with_a_reason_and_the_batch_goes_on(models):
    clock = Clock()
    p, m = make_pipeline(models, clock, start_grace_s=5)
    good = call_records(end=False)[:30]
    bad = [
        Record(topics.AUDIO, b"c1", b"\x00garbage", token="g"),
        Record(topics.AUDIO, b"c1", encode_frame(AudioFrame("c1", "agent", 1, T0, 8000, "mulaw", b"\x00" * 160))[:-5], token="trunc"),
        Record(topics.AUDIO, b"c1", encode_frame(AudioFrame("c1", "agent", 1, T0, 16000, "pcm_s16le", b"\x00" * 64_002)), token="big"),
        Record(topics.AUDIO, b"other", encode_frame(AudioFrame("c1", "agent", 1, T0, 8000, "mulaw", b"\x00" * 160)), token="key"),
        Record(topics.EVENTS, b"c1", b"{not json", token="ev"),
        Record(topics.AUDIO, b"nobody", encode_frame(AudioFrame("nobody", "agent", 0, T0, 8000, "mulaw", b"\x00" * 160)), token="orphan"),
    ]
    out = p.process(good[:10] + bad + good[10:])
    reasons = {d.record.token: d.reason for d in out.dead}
    assert reasons == {"g": "malformed", "trunc": "malformed", "big": "oversized", "key": "key_mismatch", "ev": "bad_event"}
    assert {"g", "trunc", "big", "key", "ev"} <= set(out.acks) and "orphan" not in out.acks
    assert "c1" in out.call_fields, "good chunks in the same batch were processed"
    clock.t += 6
    out = p.process([])
    assert [(d.record.token, d.reason) for d in out.dead] == [("orphan", "unknown_call")]
    assert "grace" not in out.dead[0].message and "no start event within 5 s" in out.dead[0].message
    assert m.bad_input.labels("malformed")._value.get() == 2
    assert m.bad_input.labels("unknown_call")._value.get() == 1


def test_chunks_that_arrive_before_the_start_event_are_kept(models):
    recs = call_records()
    clean = summary_of(run(make_pipeline(models)[0], recs))
    early = recs[1:20] + [recs[0]] + recs[20:]
    assert summary_of(run(make_pipeline(models)[0], early)) == clean


def test_chunks_read_from_a_backlog_wait_for_a_start_event_still_unread(models):
    """A worker catching up reads minutes-old audio ahead of its call's start event (the other topic): the start
    grace counts from when the events read there were produced, not from the wall clock."""
    clock = Clock()
    p, m = make_pipeline(models, clock, start_grace_s=10)
    recs = call_records()
    clean = summary_of(run(make_pipeline(models)[0], call_records()))
    for r in recs:
        r.timestamp = T0 - 300.0
    out = run(p, recs[1:60])
    clock.t += 30
    out.append(p.process([]))
    assert not any(r.dead for r in out)
    out += run(p, [recs[0]] + recs[60:])
    assert summary_of(out) == clean and m.bad_input.labels("unknown_call")._value.get() == 0


def test_chunks_read_from_a_backlog_expire_once_later_events_were_read(models):
    clock = Clock()
    p, m = make_pipeline(models, clock, start_grace_s=10)
    orphans = call_records()[1:20]
    for r in orphans:
        r.timestamp = T0 - 300.0
    later = call_records("c2")[0]
    later.timestamp = T0 - 300.0 + 11   # an event produced after the orphans' start grace
    assert not p.process(orphans).dead
    dead = p.process([later]).dead
    assert len(dead) == len(orphans) and {d.reason for d in dead} == {"unknown_call"}


def _past_the_end(rec: Record, token: str) -> Record:
    """The same chunk with a sequence number the call never reached."""
    f = decode_frame(rec.value)
    return Record(topics.AUDIO, rec.key, encode_frame(AudioFrame(f.call_id, f.leg, f.seq + 1000, f.capture_ts + 500, f.sample_rate, f.encoding, f.payload)), token=token)


def test_chunks_past_the_end_go_to_the_dead_letters_and_chunks_read_again_are_acknowledged(models):
    """Kafka redelivers after a failed commit: a chunk the ended call already had, or its own start event, is
    acknowledged and counted, with no effect; audio past the end, or a start reusing the id, is dead-lettered."""
    p, m = make_pipeline(models)
    recs = call_records()
    results = run(p, recs)
    again = [Record(r.topic, r.key, r.value, token=f"again-{i}") for i, r in enumerate(recs[:6])]
    reuse = Record(topics.EVENTS, b"c1", CallEvent(type="start", call_id="c1", ts=T0 + 3600).to_bytes(), token="reuse")
    out = p.process([*again, _past_the_end(recs[5], "late"), reuse])
    assert [(d.reason, d.record.token) for d in out.dead] == [("ended_call", "late"), ("ended_call", "reuse")]
    assert {f"again-{i}" for i in range(6)} <= set(out.acks) and not out.call_fields and not out.timeline
    assert m.redelivered._value.get() == 6
    # a restarted worker knows the same from the call's saved state in Redis
    fields = [r.call_fields["c1"] for r in results if "c1" in r.call_fields][-1]
    p2, m2 = make_pipeline(models)
    assert p2.needs_lookup("c1")
    p2.restore("c1", fields)
    out = p2.process([*again, _past_the_end(recs[5], "late")])
    assert [(d.reason, d.record.token) for d in out.dead] == [("ended_call", "late")] and m2.redelivered._value.get() == 6


def test_inactivity_timeout_ends_the_call_with_a_summary(models):
    clock = Clock()
    p, m = make_pipeline(models, clock, inactivity_timeout_s=30)
    run(p, call_records(end=False, duration=8.0))
    assert "c1" in p.calls
    clock.t += 31
    out = p.process([])
    assert [s["end_reason"] for s in out.summaries] == ["timeout"]
    assert out.call_fields["c1"]["status"] == "ended"
    assert m.calls_ended.labels("billing", "unknown", out.summaries[0] and _outcome(out.summaries[0]))._value.get() == 1


def _outcome(s):
    end = s["customer_sentiment_end"]
    return "unknown" if end is None else "negative" if end < -0.2 else "positive" if end > 0.2 else "neutral"


def test_sixteen_khz_pcm_gives_the_same_speech_time_as_eight_khz_mulaw(models):
    legs16 = {"agent": np.repeat(tone_leg([(1, 4)], 6.0, seed=5), 2), "customer": np.repeat(tone_leg([], 6.0, seed=6), 2)}
    recs = [Record(topics.EVENTS, b"w", CallEvent(type="start", call_id="w", ts=T0).to_bytes())]
    n = 3200
    for seq, i in enumerate(range(0, len(legs16["agent"]), n)):
        for leg, x in legs16.items():
            from workers.audio import encode_pcm16
            recs.append(Record(topics.AUDIO, b"w", encode_frame(AudioFrame("w", leg, seq, T0 + i / 16000, 16000, "pcm_s16le", encode_pcm16(x[i:i + n])))))
    recs.append(Record(topics.EVENTS, b"w", CallEvent(type="end", call_id="w", ts=T0 + 6).to_bytes()))
    p, _ = make_pipeline(models)
    s = summary_of(run(p, recs), "w")
    assert s["agent_speech_s"] == pytest.approx(3.16, abs=0.1)


def test_an_end_event_that_overtakes_the_last_chunks_waits_for_them(models):
    recs = call_records()
    clean = summary_of(run(make_pipeline(models)[0], recs))
    overtaken = recs[:100] + [recs[-1]] + recs[100:-1]
    assert summary_of(run(make_pipeline(models)[0], overtaken)) == clean


def test_an_end_event_without_the_rest_of_the_audio_ends_the_call_after_the_grace(models):
    clock = Clock()
    p, _ = make_pipeline(models, clock, end_grace_s=3)
    recs = call_records()
    out = run(p, recs[:100] + [recs[-1]])
    assert not any(r.summaries for r in out)
    clock.t += 4
    s = p.process([]).summaries
    assert [x["end_reason"] for x in s] == ["event"] and s[0]["duration_s"] == 20.0


def test_a_worker_reading_a_backlog_does_not_end_a_call_before_its_audio(models):
    """After an outage the worker reads audio produced minutes ago, and the end event (small, on the other topic)
    can come long before the call's last chunks: wall-clock waits must not end the call meanwhile."""
    clock = Clock()
    p, _ = make_pipeline(models, clock, end_grace_s=3, inactivity_timeout_s=5)
    recs = call_records()
    clean = summary_of(run(make_pipeline(models)[0], call_records()))
    for r in recs:
        r.timestamp = T0 - 120.0   # produced two minutes before this worker reads them
    out = run(p, [recs[0], recs[-1]] + recs[1:100])
    clock.t += 10   # longer than the end grace and the inactivity timeout with no audio of this call
    out.append(p.process([]))
    assert not any(r.summaries for r in out)
    out += run(p, recs[100:-1])
    assert summary_of(out) == clean


def test_a_caught_up_partition_ends_a_call_whose_audio_stopped_by_the_grace(models):
    clock = Clock()
    p, _ = make_pipeline(models, clock, end_grace_s=3)
    recs = call_records()
    for r in recs:
        r.timestamp = T0 - 120.0
    run(p, recs[:100] + [recs[-1]])
    clock.t += 4
    assert not p.process([]).summaries      # read late: its audio may still be in the backlog
    p.mark_caught_up({(topics.AUDIO, 0)})                   # the agent read the partition to its end: nothing is in flight
    s = p.process([]).summaries
    assert [x["end_reason"] for x in s] == ["event"] and s[0]["duration_s"] == 20.0


def test_an_end_event_that_overtakes_all_the_audio_waits_for_it(models):
    recs = call_records()
    clean = summary_of(run(make_pipeline(models)[0], recs))
    first = [recs[0], recs[-1]] + recs[1:-1]
    assert summary_of(run(make_pipeline(models)[0], first)) == clean


@pytest.mark.parametrize("chunk_s", [0.02, 0.5, 2.0])
def test_any_chunk_size_from_20_ms_to_2_s_gives_the_same_call(models, chunk_s):
    def records(chunk):
        legs = {"agent": tone_leg([(0, 5), (9, 12)], 20.0, seed=1), "customer": tone_leg([(4, 8), (11, 15)], 20.0, seed=2)}
        recs = [Record(topics.EVENTS, b"c1", CallEvent(type="start", call_id="c1", ts=T0, queue="billing", agent_id="a7").to_bytes())]
        recs += [Record(topics.AUDIO, b"c1", data) for _, _, data in frames_for("c1", legs, chunk_s=chunk, t0=T0)]
        recs.append(Record(topics.EVENTS, b"c1", CallEvent(type="end", call_id="c1", ts=T0 + 20).to_bytes()))
        return recs
    reference = summary_of(run(make_pipeline(models, rules=True)[0], records(0.2)))
    assert summary_of(run(make_pipeline(models, rules=True)[0], records(chunk_s), batch=64)) == reference
