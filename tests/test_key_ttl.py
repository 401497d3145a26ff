"""A live call's keys get their EXPIRE when it is due, not with every write (workers/key_ttl.py), and the sink still
leaves every written key with a TTL: the first write of a call, a refresh once a tenth of the TTL has passed, the
ended TTL at the end. Against a real Valkey."""

import asyncio
import time

import pytest
import redis
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from stream.redis_keys import Keys
from stream.settings import Settings
from workers.batch import BatchResult
from workers.key_ttl import KeyTtl
from workers.metrics import WorkerMetrics
from workers.sinks import RedisSink


def test_a_key_is_due_first_then_again_after_a_tenth_of_its_ttl():
    ttl = KeyTtl(100.0)
    assert ttl.due("a", 0.0)
    ttl.mark_set(["a"], 0.0)
    assert not ttl.due("a", 9.9) and ttl.due("a", 10.0)
    ttl.forget(["a"])
    assert ttl.due("a", 0.5)


def test_keys_not_refreshed_for_a_whole_ttl_are_dropped():
    ttl = KeyTtl(100.0)
    ttl.mark_set(["old"], 0.0)
    ttl.mark_set(["new"], 50.0)
    assert len(ttl) == 2
    ttl.mark_set(["newer"], 100.0)
    assert len(ttl) == 2 and ttl.due("old", 100.0) and not ttl.due("newer", 105.0)


@pytest.mark.parametrize("ttl_s, fraction", [(0, 0.1), (10, 0), (10, 1.5)])
def test_bad_settings_are_refused(ttl_s, fraction):
    with pytest.raises(ValueError, match="ttl_s > 0"):
        KeyTtl(ttl_s, fraction)


def _step(cid: str, t: int, ended: bool = False) -> BatchResult:
    out = BatchResult()
    out.call_fields[cid] = {"call_id": cid, "status": "ended" if ended else "active", "t": str(t)}
    out.timeline.append((cid, {"t": str(t), "leg": "customer", "speech": "0.50"}))
    if ended:
        out.ended.append(cid)
    return out


@pytest.mark.integration
def test_the_sink_sets_refreshes_and_ends_the_ttl_of_a_live_calls_keys(stack):
    active_ttl = 5                     # a refresh is due 0.5 s after the last one
    settings = Settings(active_ttl_s=active_ttl)
    keys = Keys(settings.redis_prefix)
    direct = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    call, timeline = keys.call("c1"), keys.timeline("c1")

    async def scenario():
        client = aioredis.from_url(stack.redis_url)
        sink = RedisSink(client, settings, WorkerMetrics(CollectorRegistry()))
        await sink.write(_step("c1", 1))
        first = direct.ttl(call), direct.ttl(timeline)
        direct.persist(call)
        direct.persist(timeline)       # so that only an EXPIRE sent by the next writes can give them a TTL again
        await sink.write(_step("c1", 2))
        soon = direct.ttl(call), direct.ttl(timeline)
        await asyncio.sleep(active_ttl * 0.1 + 0.1)
        await sink.write(_step("c1", 3))
        refreshed = direct.ttl(call), direct.ttl(timeline)
        direct.persist(call)
        await sink.write(_step("c1", 4, ended=True))
        end = direct.ttl(call), direct.ttl(timeline), len(sink.live_ttl)
        await client.aclose()
        return first, soon, refreshed, end

    t0 = time.monotonic()
    first, soon, refreshed, end = asyncio.run(scenario())
    assert time.monotonic() - t0 < active_ttl * 0.9, "the steps took too long for the 'soon' write to be soon"
    assert all(0 < t <= active_ttl for t in first)
    assert soon == (-1, -1), "the second write re-sent EXPIRE although the TTL was set a moment ago"
    assert all(0 < t <= active_ttl for t in refreshed)
    assert end[0] > active_ttl and end[1] > active_ttl and end[0] <= settings.ended_ttl_s and end[2] == 0
    assert direct.hget(call, "status") == "ended" and direct.xlen(timeline) == 4
    direct.close()
