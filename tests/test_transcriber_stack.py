"""The transcription tier end to end: real broker (tansu), real Redis (Valkey), a real ``callpulse transcriber``
process running Whisper-base, and real speech (the shipped sample call built from EMOVO clips)."""

from __future__ import annotations

import json
import urllib.request
import time
from collections import Counter

import numpy as np
import pytest
from kafka import KafkaConsumer
from prometheus_client import CollectorRegistry

from stream import topics
from stream.events import CallEvent
from stream.producer import CallProducer
from stream.redis_keys import STATE_FIELD, Keys
from stream.replay import load_sample_calls
from stream.settings import Settings
from tests.support import WorkerProcess, frames_for, wait_for
from workers.batch import Record
from workers.cues import CueSet
from workers.metrics import WorkerMetrics

pytest.importorskip("ctranslate2", reason="the 'transcribe' extra is not installed (scripts/test.sh installs it)")
from workers.transcribe.core import TranscriptCore   # noqa: E402
from workers.transcribe.recognizer import Recognizer   # noqa: E402
from workers.transcribe.wer import edit_distance, normalise   # noqa: E402

pytestmark = pytest.mark.integration
K = Keys()
T0 = time.time() - 300
CHUNK_S = 0.5
# The first agent turn of demo-it-angry is EMOVO's neu-m1-l1 (stream/samples/calls.json), whose text is:
AGENT_FIRST = "L'autunno prossimo Tony partirà per la Spagna nella prima metà di ottobre."


def sample_call(seconds: float) -> dict[str, np.ndarray]:
    call = next(c for c in load_sample_calls() if c.call_id == "demo-it-angry")
    return {leg: x[: int(seconds * call.sample_rate)] for leg, x in call.legs.items()}


def transcript(r, call_id: str) -> list[dict]:
    return [e for _, e in r.xrange(K.transcript(call_id))]


def topic_values(bootstrap: str, topic: str) -> list[dict]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=8000, enable_auto_commit=False)
    values = [json.loads(m.value) for m in consumer]
    consumer.close()
    return values


def send(producer: CallProducer, call_id: str, frames, pace_every: int = 0, pace_s: float = 0.0) -> None:
    for i, (_, _, data) in enumerate(frames):
        producer.send_raw(topics.AUDIO, call_id.encode(), data)
        if pace_every and i % pace_every == pace_every - 1:
            producer.flush()
            time.sleep(pace_s)
    producer.flush()


def test_a_real_utterance_comes_back_as_text_in_redis_and_on_the_topic_and_a_cue_fires(stack, worker_env, redis_client, tmp_path):
    cues = tmp_path / "cues.yaml"
    cues.write_text("cues:\n  - name: cue_travel\n    severity: info\n    leg: agent\n    phrases: {it: [\"metà di ottobre\"]}\n")
    tx = WorkerProcess({**worker_env, "CALLPULSE_CUES_PATH": str(cues)}, name="t1", subcommand="transcriber").start()
    try:
        legs = sample_call(10.0)
        with CallProducer(stack.bootstrap_servers) as p:
            p.start_call("tx-1", ts=T0, language="it", queue="billing")
            send(p, "tx-1", frames_for("tx-1", legs, chunk_s=CHUNK_S, t0=T0))
            p.end_call("tx-1", ts=T0 + 10.0)
        wait_for(lambda: redis_client.hget(K.transcriber("tx-1"), "status") == "ended", 120, what="transcriber end of call")
        entries = transcript(redis_client, "tx-1")
        agent = [e for e in entries if e["leg"] == "agent" and float(e["start"]) < 2.0]
        assert len(agent) == 1, entries
        seg = agent[0]
        ref, hyp = normalise(AGENT_FIRST), normalise(seg["text"])
        assert edit_distance(ref, hyp) / len(ref) <= 0.25, seg["text"]
        assert 1.0 <= float(seg["start"]) <= 1.5 and 5.2 <= float(seg["end"]) <= 6.0   # the clip lies at 1.4-5.3 s
        assert seg["language"] == "it" and 0 < float(seg["confidence"]) <= 1
        assert seg["segment_id"] == f"tx-1:agent:{int(round(float(seg['start']) * 1000))}"
        assert any(e["leg"] == "customer" and "pistola" in e["text"].lower() for e in entries), entries
        # retention: the call's TTLs (ended), and no audio anywhere
        assert 0 < redis_client.ttl(K.transcript("tx-1")) <= Settings().ended_ttl_s
        assert 0 < redis_client.ttl(K.transcriber("tx-1")) <= Settings().ended_ttl_s
        state = json.loads(redis_client.hget(K.transcriber("tx-1"), STATE_FIELD))
        assert set(state) == {"language", "queue", "started_at", "segments", "cues", "legs"} and len(json.dumps(state)) < 2000
        assert state["started_at"] == T0   # kept so that this call's start event, read again, is acknowledged
        # the same segments on calls.transcripts
        on_topic = topic_values(stack.bootstrap_servers, topics.TRANSCRIPTS)
        assert {v["segment_id"] for v in on_topic} == {e["segment_id"] for e in entries}
        assert next(v for v in on_topic if v["segment_id"] == seg["segment_id"])["text"] == seg["text"]
        # the cue fired on the transcript: an alert in the rule engine's shape, on the topic and the alerts stream
        alerts = [a for a in topic_values(stack.bootstrap_servers, topics.ALERTS) if a["rule"] == "cue_travel"]
        assert len(alerts) == 1 and alerts[0]["leg"] == "agent" and alerts[0]["state"] == "open"
        assert any(e["rule"] == "cue_travel" for _, e in redis_client.xrange(K.alerts))
        assert json.loads(seg["cues"]) == ["cue_travel"]
        assert tx.metric("callpulse_transcriber_segments_total") == len(entries)
        assert tx.metric("callpulse_transcriber_audio_seconds_total") > 5
        assert tx.metric("callpulse_transcript_latency_seconds_count") == len(entries)
        # the transcriber serves the workers' liveness probe beside /metrics, and its lag gauge has drained
        health = urllib.request.urlopen(f"http://127.0.0.1:{tx.metrics_port}/healthz", timeout=5)
        assert health.status == 200 and json.loads(health.read())["ok"] is True
        wait_for(lambda: tx.metric("callpulse_consumer_lag_messages") == 0, 30, what="the transcriber's lag to drain")
    finally:
        tx.stop()


def test_bad_input_goes_to_the_dead_letter_topic_and_the_transcriber_goes_on(stack, worker_env, redis_client):
    tx = WorkerProcess({**worker_env, "CALLPULSE_START_GRACE_S": "2"}, name="t2", subcommand="transcriber").start()
    try:
        with CallProducer(stack.bootstrap_servers) as p:
            p.send_raw(topics.AUDIO, b"junk", b"not a frame")
            p.send_raw(topics.EVENTS, b"junk", b"{not json")
            p.start_call("tx-2", ts=T0, language="it")
            send(p, "tx-2", frames_for("tx-2", sample_call(7.0), chunk_s=CHUNK_S, t0=T0))
            p.end_call("tx-2", ts=T0 + 7.0)
        wait_for(lambda: redis_client.hget(K.transcriber("tx-2"), "status") == "ended", 120, what="transcriber end of call")
        assert any(e["leg"] == "agent" for e in transcript(redis_client, "tx-2"))
        consumer = KafkaConsumer(topics.AUDIO_DLQ, bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest",
                                 consumer_timeout_ms=8000, enable_auto_commit=False)
        dead = [dict(m.headers) for m in consumer]
        consumer.close()
        assert sorted(h["reason"].decode() for h in dead) == ["bad_event", "malformed"]
        assert all(h["consumer"] == b"transcriber" for h in dead)
        assert tx.metric("callpulse_bad_input_total") == 2
    finally:
        tx.stop()


def reference_segments(call_id: str, frames, seconds: float) -> dict[str, str]:
    """The same call through the same core in this process, undisturbed: segment id -> text."""
    core = TranscriptCore(Settings(), Recognizer(), CueSet.load(), WorkerMetrics(CollectorRegistry()))
    records = [Record(topics.EVENTS, call_id.encode(), CallEvent(type="start", call_id=call_id, ts=T0, language="it").to_bytes())]
    records += [Record(topics.AUDIO, call_id.encode(), data) for _, _, data in frames]
    records.append(Record(topics.EVENTS, call_id.encode(), CallEvent(type="end", call_id=call_id, ts=T0 + seconds).to_bytes()))
    out = {}
    for i in range(0, len(records), 16):
        out.update({s["segment_id"]: s["text"] for s in core.process(records[i:i + 16]).segments})
    return out


def test_a_killed_transcriber_resumes_without_losing_or_repeating_a_segment(stack, worker_env, redis_client):
    seconds = 24.0
    frames = frames_for("tx-kill", sample_call(seconds), chunk_s=CHUNK_S, t0=T0)
    expected = reference_segments("tx-kill", frames, seconds)
    assert len(expected) >= 4, expected
    tx = WorkerProcess(worker_env, name="t3", subcommand="transcriber").start()
    try:
        with CallProducer(stack.bootstrap_servers) as p:
            p.start_call("tx-kill", ts=T0, language="it")
            cut = len(frames) * 2 // 3
            send(p, "tx-kill", frames[:cut], pace_every=8, pace_s=0.2)
            # kill -9 once something is written and while utterances are still open or in flight
            wait_for(lambda: len(transcript(redis_client, "tx-kill")) >= 1, 120, what="a first segment")
            tx.kill()
            written_before = len(transcript(redis_client, "tx-kill"))
            tx = WorkerProcess(worker_env, name="t3b", subcommand="transcriber").start()
            send(p, "tx-kill", frames[cut:])
            p.end_call("tx-kill", ts=T0 + seconds)
        wait_for(lambda: redis_client.hget(K.transcriber("tx-kill"), "status") == "ended", 180, what="end after the restart")
        got = transcript(redis_client, "tx-kill")
        ids = [e["segment_id"] for e in got]
        assert len(ids) == len(set(ids)), Counter(ids)                       # no duplicates in Redis
        assert {e["segment_id"]: e["text"] for e in got} == expected         # nothing lost, same text as undisturbed
        assert written_before < len(expected)                                # the kill really was mid-call
        assert tx.metric("callpulse_calls_restored_total") == 1
        on_topic = Counter(v["segment_id"] for v in topic_values(stack.bootstrap_servers, topics.TRANSCRIPTS))
        assert set(on_topic) == set(expected)   # at-least-once on the topic: a repeat carries the same segment_id
    finally:
        tx.stop()
