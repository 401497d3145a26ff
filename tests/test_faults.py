"""The fault matrix on real Apache Kafka: each fault strikes mid-call, and every call must end with the summary
and counters of the same call through an undisturbed worker (tests/fault_support.py). Results are appended
to artifacts/fault_matrix.jsonl; the README's "Fault matrix" table lists them."""

import time
from contextlib import contextmanager

import pytest
import redis

from stream.producer import CallProducer
from tests.fault_support import K, T0, call_legs, compare, diff, fault_stack, record, send_frames, snapshot, verdict, worker_env_for
from tests.support import WorkerProcess, frames_for, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.apache_kafka, pytest.mark.faults]
DURATION_S = 30.0
BROKER_DOWN_S = 10.0   # longer than the group session timeout (6 s): the worker's group membership expires
SPLIT = 170          # chunks (of both legs) sent before the fault: about 17 s of the 30 s call


def ended(r, cid):
    return r.hget(K.call(cid), "status") == "ended"


def progressed(r, cid, seconds=12.0):
    return float(r.hget(K.call(cid), "duration_s") or 0) >= seconds


def run_reference(stack, r, producer_servers=None):
    frames = frames_for("ref", call_legs(DURATION_S), t0=T0)
    with CallProducer(producer_servers or stack.bootstrap_servers) as p:
        send_frames(p, "ref", frames, start=True, end_ts=T0 + DURATION_S)
    wait_for(lambda: ended(r, "ref"), 90, what="the reference call")


def test_broker_kill_and_restart_mid_call_loses_nothing(tmp_path):
    """kill -9 the (single) Apache Kafka broker mid-call; it restarts from its log on disk, the same worker
    process carries on, and the call ends as if nothing happened."""
    with fault_stack(tmp_path) as stack:
        r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        worker = WorkerProcess(worker_env_for(stack, tmp_path)).start()
        try:
            run_reference(stack, r)
            frames = frames_for("broker", call_legs(DURATION_S), t0=T0)
            with CallProducer(stack.bootstrap_servers) as p:
                send_frames(p, "broker", frames[:SPLIT], start=True)
            wait_for(lambda: progressed(r, "broker"), 60, what="progress before the fault")
            node = stack.kafka.nodes[0]
            stack.kafka.stop_node(node, kill=True)
            time.sleep(BROKER_DOWN_S)
            stack.kafka.start_node(node)
            with CallProducer(stack.bootstrap_servers) as p:
                send_frames(p, "broker", frames[SPLIT:], end_ts=T0 + DURATION_S)
            wait_for(lambda: ended(r, "broker"), 120, what="the call to end after the broker restart")
            assert worker.proc.poll() is None, "the worker died with the broker"
            verdicts = compare(r, "ref", ["broker"], "broker kill -9 + restart (Apache Kafka, log on disk)")
            assert verdicts == {"broker": "identical"}, diff(r, "ref", "broker")
        finally:
            worker.stop()


@contextmanager
def _redis_restart(tmp_path, appendonly: bool):
    """Redis is killed mid-call and restarted on the same port. Yields the Redis client once the call ended,
    what survived the restart, the worker's restore count, and the reference's snapshot taken before the fault."""
    with fault_stack(tmp_path, redis="redis", redis_appendonly=appendonly) as stack:
        r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        worker = WorkerProcess(worker_env_for(stack, tmp_path)).start()
        try:
            run_reference(stack, r)
            ref = snapshot(r, "ref", timeline=False)
            frames = frames_for("live", call_legs(DURATION_S), t0=T0)
            with CallProducer(stack.bootstrap_servers) as p:
                send_frames(p, "live", frames[:SPLIT], start=True)
            wait_for(lambda: progressed(r, "live"), 60, what="progress before the fault")
            stack.stop_redis(kill=True)
            time.sleep(2)
            stack.start_redis()
            kept = {"ref_summary": r.get(K.summary("ref")) is not None, "live_hash": r.exists(K.call("live")) == 1}
            with CallProducer(stack.bootstrap_servers) as p:
                send_frames(p, "live", frames[SPLIT:], end_ts=T0 + DURATION_S)
            wait_for(lambda: ended(r, "live"), 120, what="the call to end after the Redis restart")
            assert worker.proc.poll() is None
            yield r, kept, worker.metric("callpulse_calls_restored_total"), ref
        finally:
            worker.stop()


def test_redis_restart_with_append_only_file_loses_nothing(tmp_path):
    with _redis_restart(tmp_path, appendonly=True) as (r, kept, _, _ref):
        assert kept == {"ref_summary": True, "live_hash": True}
        verdicts = compare(r, "ref", ["live"], "Redis kill -9 + restart, appendonly yes (appendfsync always)")
        assert verdicts == {"live": "identical"}, diff(r, "ref", "live")


def test_redis_restart_without_persistence_rebuilds_live_calls_from_the_workers(tmp_path):
    """Without persistence Redis comes back empty: what ended before is gone (summaries, KPIs, the alert
    stream, timelines), and the live call's hash is rebuilt whole by the worker's next write from the state it
    holds in memory, so the call still ends with the undisturbed summary and counters. Its timeline keeps only
    the steps written after the restart."""
    with _redis_restart(tmp_path, appendonly=False) as (r, kept, restored, ref):
        assert kept == {"ref_summary": False, "live_hash": False}, "an empty Redis was expected after the restart"
        assert restored == 0, "the worker must rebuild from its own state, not restore from Redis"
        got = snapshot(r, "live", timeline=False)
        record("Redis kill -9 + restart, no persistence (live calls; ended calls' summaries are lost)", {"live": verdict(ref, got)})
        assert verdict(ref, got) == "identical", (ref, got)
        assert "_state" in r.hgetall(K.call("live"))
        assert 0 < r.xlen(K.timeline("live")) < 2 * DURATION_S, "only steps after the restart can be in the timeline"


def test_worker_kill_during_a_redis_outage_loses_nothing(tmp_path):
    """Redis goes down mid-call; the worker keeps retrying its write (its batch stays unacknowledged), is
    killed with SIGKILL during the outage; Redis (append-only) comes back and a new worker finishes the call."""
    with fault_stack(tmp_path, redis="redis", redis_appendonly=True) as stack:
        r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        env = worker_env_for(stack, tmp_path)
        first = WorkerProcess(env, "first").start()
        try:
            run_reference(stack, r)
            frames = frames_for("outage", call_legs(DURATION_S), t0=T0)
            with CallProducer(stack.bootstrap_servers) as p:
                send_frames(p, "outage", frames[:SPLIT], start=True)
            wait_for(lambda: progressed(r, "outage", 10.0), 60, what="progress before the outage")
            stack.stop_redis()
            with CallProducer(stack.bootstrap_servers) as p:
                send_frames(p, "outage", frames[SPLIT:SPLIT + 60])
            time.sleep(4)   # the worker has read these and is retrying its Redis write
        finally:
            first.kill()
        stack.start_redis()
        second = WorkerProcess(env, "second").start()
        try:
            with CallProducer(stack.bootstrap_servers) as p:
                send_frames(p, "outage", frames[SPLIT + 60:], end_ts=T0 + DURATION_S)
            wait_for(lambda: ended(r, "outage"), 120, what="the call to end after the outage")
            verdicts = compare(r, "ref", ["outage"], "worker kill -9 during a Redis outage (appendonly yes)")
            assert verdicts == {"outage": "identical"}, diff(r, "ref", "outage")
            assert second.metric("callpulse_calls_restored_total") == 1
        finally:
            second.stop()
