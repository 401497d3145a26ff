"""Issue 17, end to end: every poison message of the issue goes into a live worker through the real broker,
together with normal calls (all produced before the worker starts, so they share its first batches). The worker
stays up and healthy, the neighbouring calls get their summaries, and every poison message is in calls.audio.dlq
with its reason. Broker-agnostic: it only uses the ``stack`` fixture's bootstrap servers and Redis URL."""

import json
import time
import urllib.request

import numpy as np
import pytest
from kafka import KafkaConsumer

from stream import topics
from stream.frame import HEADER, AudioFrame, encode_frame
from stream.producer import CallProducer
from stream.redis_keys import Keys
from support import WorkerProcess, frames_for, tone_leg, wait_for
from workers.audio import encode_mulaw
from workers.sinks import MAX_DLQ_VALUE_BYTES

pytestmark = pytest.mark.integration
K = Keys()
T0 = time.time() - 120
BIG_BYTES = 1_000_100   # accepted by the broker, above what the worker's producer may send (1,000,000)
NORMAL = ("ok-1", "ok-2", "ok-1:timeline")


def legs(duration: float) -> dict:
    return {"agent": tone_leg([(0, 2), (4, 5)], duration, seed=1), "customer": tone_leg([(2, 4)], duration, seed=2)}


def oversized_frame(call_id: str) -> bytes:
    payload = b"\x7f" * (BIG_BYTES - HEADER.size - len(call_id))
    return HEADER.pack(b"CP", 1, 0, 1, len(call_id), 8000, 9_999, int(T0 * 1e6), len(payload)) + call_id.encode() + payload


def oversized_event(call_id: str) -> bytes:
    head = json.dumps({"type": "start", "call_id": call_id, "ts": T0, "queue": ""}).encode()[:-2]
    return head + b"x" * (BIG_BYTES - len(head) - 2) + b'"}'


def chunk(call_id: str, leg: str, seq: int, ts: float) -> bytes:
    return encode_frame(AudioFrame(call_id, leg, seq, ts, 8000, "mulaw", encode_mulaw(np.zeros(1600, np.float32))))


def poison() -> list[tuple[str, bytes | None, bytes | None, str]]:
    """(topic, key, value, expected reason) for every bad message of the issue."""
    end_ok1 = json.dumps({"type": "end", "call_id": "ok-1", "ts": T0 + 6}).encode()
    return [
        (topics.EVENTS, b"ok-1", None, "bad_event"),                                            # tombstone
        (topics.EVENTS, b"ok-2", b"[" * 100_000, "bad_event"),                                  # RecursionError
        (topics.EVENTS, b"ok-1", b'{"type": "end", "call_id": "ok-1", "ts": NaN}', "bad_timestamp"),
        (topics.EVENTS, b"neg", b'{"type": "start", "call_id": "neg", "ts": -Infinity}', "bad_timestamp"),
        (topics.AUDIO, b"ok-2", oversized_frame("ok-2"), "oversized"),                          # >= 1,000,000 bytes
        (topics.EVENTS, b"ok-2", oversized_event("ok-2"), "bad_event"),                          # the same on events
        (topics.AUDIO, None, chunk("ok-2", "agent", 9_998, T0), "key_mismatch"),                 # no key
        (topics.AUDIO, b"ok-1", None, "malformed"),                                             # tombstone on audio
        (topics.EVENTS, b"ok-2", end_ok1, "key_mismatch"),                                       # value of another key
    ]


def test_poison_messages_are_dead_lettered_and_the_worker_and_its_neighbours_go_on(stack, worker_env, redis_client):
    bad = poison()
    with CallProducer(stack.bootstrap_servers, max_request_size=2_000_000) as p:
        for cid in NORMAL:
            p.start_call(cid, ts=T0, queue="billing")
        frames = {cid: frames_for(cid, legs(6.0), t0=T0) for cid in NORMAL}
        for i in range(max(len(f) for f in frames.values())):
            for cid in NORMAL:
                if i < len(frames[cid]):
                    p.send_raw(topics.AUDIO, cid.encode(), frames[cid][i][2])
            if i == 10:
                for topic, key, value, _ in bad:
                    p.send_raw(topic, key, value)
        # the freeze: seq 1 lost, seq 3 captured 2.4 s before seq 2, then the end
        p.start_call("clk", ts=T0)
        for leg in ("agent", "customer"):
            for seq, ts in ((0, T0), (2, T0 + 0.4), (3, T0 - 2.0)):
                p.send_raw(topics.AUDIO, b"clk", chunk("clk", leg, seq, ts))
        for cid in NORMAL:
            p.end_call(cid, ts=T0 + 6)
        p.end_call("clk", ts=T0 + 0.8)
    worker = WorkerProcess(worker_env).start()
    try:
        def summaries():
            return all(redis_client.get(K.summary(c)) for c in NORMAL + ("clk",))
        wait_for(summaries, 90, what="summaries of the normal calls and the clock-step call")
        for cid in NORMAL:
            s = json.loads(redis_client.get(K.summary(cid)))
            assert s["call_id"] == cid and s["duration_s"] == 6.0 and s["end_reason"] == "event"
            assert redis_client.hget(K.call(cid), "status") == "ended"
        assert redis_client.type(K.timeline("ok-1")) == "stream" and redis_client.type(K.call("ok-1:timeline")) == "hash"

        consumer = KafkaConsumer(topics.AUDIO_DLQ, bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest",
                                 consumer_timeout_ms=10_000, enable_auto_commit=False)
        dead = []
        for m in consumer:
            dead.append((dict(m.headers), m.key, m.value))
            if len(dead) == len(bad):
                break
        consumer.close()
        got = sorted((h["source_topic"].decode(), key or b"", (value or b"")[:64], h["reason"].decode()) for h, key, value in dead)
        want = sorted((t, key or b"", (value or b"")[:64], reason) for t, key, value, reason in bad)
        assert got == want
        cut = sorted((h["reason"].decode(), int(h["original_value_bytes"]), len(v)) for h, _, v in dead if h.get("truncated") == b"value")
        assert cut == sorted((reason, len(value), MAX_DLQ_VALUE_BYTES) for _, _, value, reason in bad
                             if value and len(value) > MAX_DLQ_VALUE_BYTES)
        assert [c[1] for c in cut].count(BIG_BYTES) == 2

        assert worker.proc.poll() is None, "the worker process exited"
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/healthz", timeout=5).read())
        assert health["ok"] is True
        # the heartbeat timer and the 1 s core timer both run in the live worker
        assert health["loop_beat_age_s"] < 10 and health["last_batch_age_s"] < 10 and health["core_run_s"] < 10
        assert 0 <= worker.metric("callpulse_last_batch_age_seconds") < 10
        assert worker.metric("callpulse_bad_input_total") == len(bad)
        assert worker.metric("callpulse_dead_letters_total") == len(bad)
        assert worker.metric("callpulse_calls_ended_total") == len(NORMAL) + 1
        assert "Traceback" not in open(worker.log.name, errors="replace").read()
    finally:
        worker.stop()
