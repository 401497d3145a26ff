"""End to end through the real embedded broker, a real worker process and the real Redis server."""

import json
import time

import numpy as np
import pytest
from kafka import KafkaConsumer

from stream import topics
from stream.frame import AudioFrame, encode_frame
from stream.producer import CallProducer
from stream.redis_keys import STATE_FIELD, Keys
from tests.support import WorkerProcess, frames_for, tone_leg, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.brokers("tansu", "apache_kafka")]
K = Keys()
T0 = time.time() - 120   # the call "happened" two minutes ago: its KPIs fall in the 15 min window


def legs(duration=16.0):
    return {"agent": tone_leg([(0, 5), (9, 12)], duration, seed=1), "customer": tone_leg([(4, 8), (11, 15)], duration, seed=2)}


def send_call(producer, call_id, frames, end=True, t0=T0, duration=16.0, pace_s=0.0):
    producer.start_call(call_id, ts=t0, queue="billing", campaign="spring", agent_id="a7", language="en", direction="inbound")
    for i, (_, _, data) in enumerate(frames):
        producer.send_raw(topics.AUDIO, call_id.encode(), data)
        if pace_s and i % 20 == 19:
            producer.flush()
            time.sleep(pace_s)
    if end:
        producer.end_call(call_id, ts=t0 + duration)
    producer.flush()


def ended(r, call_id):
    return r.hget(K.call(call_id), "status") == "ended"


def test_a_call_end_to_end_lands_in_redis_and_prometheus(stack, worker_env, redis_client):
    worker = WorkerProcess(worker_env).start()
    try:
        frames = frames_for("e2e-1", legs(), t0=T0)
        with CallProducer(stack.bootstrap_servers) as p:
            p.start_call("e2e-1", ts=T0, queue="billing", campaign="spring", agent_id="a7", language="en", direction="inbound")
            p.flush()
            half = len(frames) // 2
            for _, _, data in frames[:half]:
                p.send_raw(topics.AUDIO, b"e2e-1", data)
            p.flush()
            # live, mid-call: the hash and the active index exist before the call ends
            wait_for(lambda: redis_client.hget(K.call("e2e-1"), "status") == "active", 60, what="live call hash")
            assert redis_client.zscore(K.active, "e2e-1") is not None
            for _, _, data in frames[half:]:
                p.send_raw(topics.AUDIO, b"e2e-1", data)
            p.end_call("e2e-1", ts=T0 + 16)
        wait_for(lambda: ended(redis_client, "e2e-1"), 60, what="call end")
        h = redis_client.hgetall(K.call("e2e-1"))
        assert h["queue"] == "billing" and h["agent_id"] == "a7"
        assert float(h["duration_s"]) == 16.0
        assert float(h["agent_speech_s"]) == pytest.approx(8.3, abs=0.2)
        assert float(h["overtalk_s"]) == pytest.approx(2.3, abs=0.2)
        assert h["customer_emotion"] and -1 <= float(h["customer_sentiment_avg"]) <= 1
        assert redis_client.zscore(K.active, "e2e-1") is None
        assert 0 < redis_client.ttl(K.call("e2e-1")) <= 86_400
        summary = json.loads(redis_client.get(K.summary("e2e-1")))
        assert summary["interruptions_customer"] == 2 and summary["end_reason"] == "event"
        timeline = redis_client.xrange(K.timeline("e2e-1"))
        assert len(timeline) == 32 and {e[1]["leg"] for e in timeline} == {"agent", "customer"}
        assert worker.metric("callpulse_chunks_total") == len(frames)
        assert worker.metric("callpulse_windows_total", leg="agent") == 16
        assert worker.metric("callpulse_end_to_end_latency_seconds_count") == 32
        assert worker.metric("callpulse_calls_ended_total", queue="billing", campaign="spring") == 1
        assert worker.metric("callpulse_inference_seconds_count") >= 1
        # the summary also went to its topic
        consumer = KafkaConsumer(topics.SUMMARIES, bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest",
                                 consumer_timeout_ms=8000, enable_auto_commit=False)
        values = [json.loads(m.value) for m in consumer]
        consumer.close()
        assert [v["call_id"] for v in values] == ["e2e-1"]
        # the group leader turns summaries into manager KPIs in Redis
        kpi = wait_for(lambda: redis_client.hgetall(K.kpi("queue", "billing")), 30, what="KPIs for the billing queue")
        assert float(kpi["15m.calls"]) == 1 and float(kpi["15m.aht_s"]) == 16.0
        assert "campaign:spring" in redis_client.smembers(K.kpis) and "agent:a7" in redis_client.smembers(K.kpis)
    finally:
        worker.stop()


def test_duplicated_and_out_of_order_chunks_count_once(stack, worker_env, redis_client):
    worker = WorkerProcess(worker_env).start()
    try:
        frames = frames_for("clean", legs(), t0=T0)
        messy_frames = frames_for("messy", legs(), t0=T0)
        rng = np.random.default_rng(7)
        messy = []
        for i in range(0, len(messy_frames), 8):
            block = messy_frames[i:i + 8]
            rng.shuffle(block)
            messy += block + [b for b in block if rng.random() < 0.25]
        with CallProducer(stack.bootstrap_servers) as p:
            send_call(p, "clean", frames)
            send_call(p, "messy", messy)
        wait_for(lambda: ended(redis_client, "clean") and ended(redis_client, "messy"), 90, what="both calls ended")
        a = json.loads(redis_client.get(K.summary("clean")))
        b = json.loads(redis_client.get(K.summary("messy")))
        for s in (a, b):
            s.pop("call_id")
        assert a == b
        dropped = worker.metric("callpulse_chunks_dropped_total")
        assert dropped == len(messy) - len(messy_frames) > 0
    finally:
        worker.stop()


def test_bad_input_is_dead_lettered_with_its_reason_and_the_worker_goes_on(stack, worker_env, redis_client):
    worker = WorkerProcess({**worker_env, "CALLPULSE_START_GRACE_S": "2"}).start()
    try:
        bad = {
            b"not a frame": "malformed",
            encode_frame(AudioFrame("x", "agent", 0, T0, 8000, "mulaw", b"\x00" * 160)).replace(b"\x40\x1f", b"\x44\xac", 1): "bad_sample_rate",
        }
        with CallProducer(stack.bootstrap_servers) as p:
            for value in bad:
                p.send_raw(topics.AUDIO, b"x", value)
            p.send_raw(topics.AUDIO, b"ghost", encode_frame(AudioFrame("ghost", "agent", 0, T0, 8000, "mulaw", b"\x00" * 160)))
            send_call(p, "after-bad", frames_for("after-bad", legs(6.0), t0=T0), duration=6.0)
        wait_for(lambda: ended(redis_client, "after-bad"), 60, what="the good call after bad input")
        consumer = KafkaConsumer(topics.AUDIO_DLQ, bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest",
                                 consumer_timeout_ms=10000, enable_auto_commit=False)
        got = {}
        for m in consumer:
            headers = dict(m.headers)
            got[m.value] = headers["reason"].decode()
            assert headers["error"] and headers["source_topic"] == b"calls.audio"
            if len(got) == 3:
                break
        consumer.close()
        assert {v: got[v] for v in bad} == bad
        assert sorted(got.values()) == sorted(list(bad.values()) + ["unknown_call"])
        assert worker.metric("callpulse_bad_input_total", reason="malformed") == 1
        assert worker.metric("callpulse_dead_letters_total") == 3
    finally:
        worker.stop()


def test_a_killed_worker_resumes_every_call_without_loss_or_double_counting(stack, worker_env, redis_client):
    """Reference: the same audio through an undisturbed worker. Then kill -9 a worker mid-call, start a new one,
    and require the identical end-of-call summary."""
    duration = 30.0
    call_legs = {"agent": tone_leg([(0, 6), (10, 16), (22, 27)], duration, seed=3),
                 "customer": tone_leg([(5, 11), (15, 23), (26, 30)], duration, seed=4)}
    first = WorkerProcess(worker_env, "first").start()
    try:
        with CallProducer(stack.bootstrap_servers) as p:
            send_call(p, "ref", frames_for("ref", call_legs, t0=T0), duration=duration)
        wait_for(lambda: ended(redis_client, "ref"), 90, what="reference call")
        frames = frames_for("crash", call_legs, t0=T0)
        with CallProducer(stack.bootstrap_servers) as p:
            p.start_call("crash", ts=T0, queue="billing", campaign="spring", agent_id="a7", language="en", direction="inbound")
            for _, _, data in frames[:170]:
                p.send_raw(topics.AUDIO, b"crash", data)
        wait_for(lambda: int(redis_client.hget(K.call("crash"), "agent_windows") or 0) + int(redis_client.hget(K.call("crash"), "customer_windows") or 0) > 0
                 and float(redis_client.hget(K.call("crash"), "duration_s") or 0) >= 12, 60, what="progress before the crash")
    finally:
        first.kill()
    before = redis_client.hgetall(K.call("crash"))
    assert before["status"] == "active"
    second = WorkerProcess(worker_env, "second").start()
    try:
        with CallProducer(stack.bootstrap_servers) as p:
            for _, _, data in frames[170:]:
                p.send_raw(topics.AUDIO, b"crash", data)
            p.end_call("crash", ts=T0 + duration)
        wait_for(lambda: ended(redis_client, "crash"), 90, what="the resumed call to end")
        ref = json.loads(redis_client.get(K.summary("ref")))
        got = json.loads(redis_client.get(K.summary("crash")))
        for s in (ref, got):
            s.pop("call_id")
        assert got == ref
        assert second.metric("callpulse_calls_restored_total") == 1
        assert float(redis_client.hget(K.call("crash"), "duration_s")) == duration
        assert STATE_FIELD in redis_client.hgetall(K.call("crash"))
    finally:
        second.stop()


def test_a_rebalance_moves_live_calls_to_a_new_worker_without_loss(stack, worker_env, redis_client):
    """Four calls in flight; a second worker joins mid-call and takes over some partitions. Every call must end
    with the summary of an undisturbed run, and the new worker must have restored the calls it took over."""
    duration = 24.0
    call_legs = {"agent": tone_leg([(0, 6), (10, 16)], duration, seed=5), "customer": tone_leg([(5, 11), (15, 22)], duration, seed=6)}
    ids = [f"move-{i}" for i in range(6)]
    first = WorkerProcess(worker_env, "first").start()
    second = None
    try:
        with CallProducer(stack.bootstrap_servers) as p:
            send_call(p, "reference", frames_for("reference", call_legs, t0=T0), duration=duration)
            frames = {cid: frames_for(cid, call_legs, t0=T0) for cid in ids}
            for cid in ids:
                p.start_call(cid, ts=T0, queue="billing", campaign="spring", agent_id="a7", language="en", direction="inbound")
                for _, _, data in frames[cid][:120]:
                    p.send_raw(topics.AUDIO, cid.encode(), data)
        wait_for(lambda: ended(redis_client, "reference") and all(float(redis_client.hget(K.call(c), "duration_s") or 0) >= 10 for c in ids),
                 90, what="calls in flight")
        second = WorkerProcess(worker_env, "second").start()
        wait_for(lambda: second.metric("callpulse_calls_restored_total") > 0 or first.metric("callpulse_active_calls") < len(ids), 60,
                 what="the rebalance")
        with CallProducer(stack.bootstrap_servers) as p:
            for cid in ids:
                for _, _, data in frames[cid][120:]:
                    p.send_raw(topics.AUDIO, cid.encode(), data)
                p.end_call(cid, ts=T0 + duration)
        wait_for(lambda: all(ended(redis_client, c) for c in ids), 90, what="every moved call to end")
        ref = json.loads(redis_client.get(K.summary("reference")))
        ref.pop("call_id")
        for cid in ids:
            got = json.loads(redis_client.get(K.summary(cid)))
            got.pop("call_id")
            assert got == ref, cid
        assert second.metric("callpulse_calls_restored_total") >= 1
    finally:
        first.stop()
        if second:
            second.stop()
