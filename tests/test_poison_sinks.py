"""Issue 17, the sinks: a Redis connection dropped in the middle of a batch's MULTI/EXEC never lets the batch be
acknowledged unwritten; call ids cannot collide with other keys; dead letters always fit the producer;
outputs never carry NaN or Infinity. Against a real Valkey (through a real TCP proxy where a drop is needed)."""

import asyncio
import json
import math
import time

import pytest
import redis
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from stream import finite_json
from stream.localstack import free_port
from stream.redis_keys import Keys
from stream.settings import Settings
from workers.batch import BatchResult, DeadLetter, Record
from workers.metrics import WorkerMetrics
from workers.sinks import MAX_DLQ_VALUE_BYTES, RedisSink, dead_letter_message

pytestmark = pytest.mark.integration
READ_CHUNK_BYTES = 65_536
END_TS = float(int(time.time()))   # the sink trims the summary index to the last two days


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 in front of Redis. While ``failing`` is set it closes every connection the moment
    the client sends EXEC, before forwarding it: Redis discards the open MULTI, the client sees a dropped
    connection in the middle of ``execute`` (as on a network cut or a Redis failover)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.failing = False
        self.dropped = 0
        self.server = None

    async def start(self) -> "DroppingProxy":
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _client(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def upstream_to_client():
            try:
                while data := await up_reader.read(READ_CHUNK_BYTES):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        back = asyncio.ensure_future(upstream_to_client())
        try:
            while data := await reader.read(READ_CHUNK_BYTES):
                if self.failing and b"EXEC" in data:
                    self.dropped += 1
                    break
                up_writer.write(data)
                await up_writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            up_writer.close()
            writer.close()
            back.cancel()


def batch(call_id: str, t: float) -> BatchResult:
    """An ended call as the core hands it to the sinks: its hash, a timeline entry, its summary, its removal
    from the active index."""
    out = BatchResult()
    out.call_fields[call_id] = {"call_id": call_id, "status": "ended", "duration_s": "12"}
    out.timeline.append((call_id, {"t": "1", "leg": "agent", "speech": "0.50"}))
    out.summaries.append({"call_id": call_id, "ended_at": t, "duration_s": 12.0})
    out.ended.append(call_id)
    return out


def test_a_connection_dropped_mid_execute_is_retried_with_the_whole_batch(stack):
    """Before the fix: redis-py empties a pipeline whose execute failed; the retry ran the empty pipeline, got []
    and returned, so the agent acknowledged a batch that was never written (the issue's lost summary)."""
    port = int(stack.redis_url.rsplit(":", 1)[1].split("/")[0])
    direct = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    keys = Keys()
    direct.zadd(keys.active, {"lost-1": 10.0})

    async def scenario():
        proxy = await DroppingProxy(port).start()
        client = aioredis.from_url(f"redis://127.0.0.1:{proxy.port}/0")
        metrics = WorkerMetrics(CollectorRegistry())
        sink = RedisSink(client, Settings(), metrics)
        proxy.failing = True
        write = asyncio.ensure_future(sink.write(batch("lost-1", END_TS)))
        # more drops than redis-py's own retries inside one execute, so our retry loop must take over
        while proxy.dropped < 6:
            assert not write.done(), "write returned while every EXEC was being dropped"
            await asyncio.sleep(0.02)
        assert not write.done()
        proxy.failing = False
        await asyncio.wait_for(write, 30)
        errors = metrics.redis_errors._value.get()
        await client.aclose()
        await proxy.close()
        return errors

    errors = asyncio.run(scenario())
    assert errors >= 1
    assert direct.hgetall(keys.call("lost-1"))["status"] == "ended"
    assert json.loads(direct.get(keys.summary("lost-1")))["call_id"] == "lost-1"
    assert direct.zscore(keys.summaries, "lost-1") == END_TS
    assert direct.zscore(keys.active, "lost-1") is None
    assert direct.xlen(keys.timeline("lost-1")) == 1
    direct.close()


def test_a_call_id_ending_in_timeline_cannot_overwrite_another_calls_keys(stack):
    """The hash of call 'x:timeline' used to be the timeline stream of call 'x' (Redis WRONGTYPE, crash loop)."""
    direct = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    keys = Keys()

    async def write():
        client = aioredis.from_url(stack.redis_url)
        sink = RedisSink(client, Settings(), WorkerMetrics(CollectorRegistry()))
        for cid in ("x", "x:timeline", "x%3Atimeline", "a:b:c"):
            await sink.write(batch(cid, 1_700_000_100.0))
        await client.aclose()

    asyncio.run(write())
    for cid in ("x", "x:timeline", "x%3Atimeline", "a:b:c"):
        assert direct.type(keys.call(cid)) == "hash" and direct.hget(keys.call(cid), "call_id") == cid
        assert direct.type(keys.timeline(cid)) == "stream" and direct.xlen(keys.timeline(cid)) == 1
    assert len({keys.call(c) for c in ("x:timeline", "x%3Atimeline")}) == 2
    direct.close()


def test_an_oversized_dead_letter_is_cut_and_says_so():
    huge = Record("calls.audio", b"k" * 5000, b"CP" + b"\x00" * 1_200_000, partition=3)
    key, value, headers = dead_letter_message(DeadLetter(huge, "oversized", "payload of 1200000 bytes exceeds ..."))
    h = dict(headers)
    assert len(value) == MAX_DLQ_VALUE_BYTES and value == huge.value[:MAX_DLQ_VALUE_BYTES]
    assert h["reason"] == b"oversized" and h["truncated"] == b"value" and h["original_value_bytes"] == b"1200002"
    assert len(key) == 1024 and h["original_key_bytes"] == b"5000" and h["source_partition"] == b"3"
    tomb = Record("calls.events", b"c1", None)
    key, value, headers = dead_letter_message(DeadLetter(tomb, "bad_event", "tombstone"))
    assert value is None and key == b"c1" and "truncated" not in dict(headers)


def test_outputs_never_hold_nan_or_infinity():
    doc = {"duration_s": float("inf"), "x": [1.0, float("nan"), {"y": float("-inf")}], "ok": 2.5, "n": 3}
    text = finite_json.dumps(doc)
    assert json.loads(text) == {"duration_s": None, "x": [1.0, None, {"y": None}], "ok": 2.5, "n": 3}
    assert all(tok not in text for tok in ("NaN", "Infinity"))
    assert math.isfinite(json.loads(text)["ok"])


def test_an_alert_keeps_its_times_to_the_microsecond_in_the_alert_stream(stack):
    """The alert stream once held ``at`` (epoch seconds) with 4 significant digits: 1.764e+09, days off."""
    from workers.rules import Alert
    at, t = 1_764_028_834.712345, 12_345.678901   # a capture time, and 3.4 h into a call
    alert = Alert("a1", "c-times", "customer_anger", "warning", "customer", "open", 0.61234567, 0.6, t, at, "m")
    client = aioredis.from_url(stack.redis_url)
    asyncio.run(RedisSink(client, Settings(), WorkerMetrics(CollectorRegistry())).write(BatchResult(alerts=[alert])))
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    _, fields = r.xrevrange(Keys().alerts, count=1)[0]
    assert abs(float(fields["at"]) - at) < 1e-6 and abs(float(fields["t"]) - t) < 1e-6
    assert float(fields["value"]) == 0.612346
