"""Issue 17, the sinks: a Redis connection dropped in the middle of a batch's MULTI/EXEC never lets the batch be
acknowledged unwritten, nor written twice when Redis applied it and only the reply was lost; call ids cannot
collide with other keys; dead letters always fit the producer; outputs never carry NaN or Infinity. Against a
real Valkey (through a real TCP proxy where a drop or a lost reply is needed)."""

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
from workers.rules import Alert
from workers.sinks import MAX_DLQ_VALUE_BYTES, RedisSink, dead_letter_message
from workers.transcribe.core import TranscriptBatch
from workers.transcribe.sinks import TranscriptRedisSink

pytestmark = pytest.mark.integration
READ_CHUNK_BYTES = 65_536
END_TS = float(int(time.time()))   # the sink trims the summary index to the last two days


class DroppingProxy:
    """A TCP proxy on 127.0.0.1 in front of Redis. While ``failing`` is set it closes every connection the moment
    the client sends EXEC, before forwarding it: Redis discards the open MULTI, the client sees a dropped
    connection in the middle of ``execute`` (as on a network cut or a Redis failover).

    ``lose_next_reply`` forwards the next EXEC, lets Redis apply the transaction, and closes the connection before
    its reply reaches the client (as when Redis is killed right after applying it: stop 33's CI failure)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.failing = False
        self.dropped = 0
        self.lose_next_reply = False
        self.replies_lost = 0
        self.server = None

    async def start(self) -> "DroppingProxy":
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _client(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        swallowing, swallowed = asyncio.Event(), asyncio.Event()

        async def upstream_to_client():
            try:
                while data := await up_reader.read(READ_CHUNK_BYTES):
                    if swallowing.is_set():
                        swallowed.set()
                        continue
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
                lose = self.lose_next_reply and b"EXEC" in data
                if lose:
                    self.lose_next_reply = False
                    swallowing.set()
                up_writer.write(data)
                await up_writer.drain()
                if lose:
                    await asyncio.wait_for(swallowed.wait(), 5)   # Redis answered: EXEC has run
                    await asyncio.sleep(0.2)                        # the rest of the reply, if it came in pieces
                    self.replies_lost += 1
                    break
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


def tx_batch(call_id: str, t: float) -> TranscriptBatch:
    """The transcriber's batch: one redacted segment, its per-call hash and a cue alert."""
    out = TranscriptBatch()
    out.segments.append({"call_id": call_id, "segment_id": "s1", "leg": "customer", "start": 1.0, "end": 2.5,
                         "text": "[REDACTED] please", "language": "en", "final": True, "cues": []})
    out.call_fields[call_id] = {"status": "active", "segments": "1"}
    out.alerts.append(Alert("a-tx", call_id, "cancel_intent", "warning", "customer", "open", 1.0, 1.0, 2.5, t, "m"))
    return out


@pytest.mark.parametrize("tier", ["worker", "transcriber"])
def test_a_write_applied_whose_reply_was_lost_is_not_written_again(stack, tier):
    """Stop 33's CI failure: Redis (append-only) was killed mid-call right after applying a batch's MULTI/EXEC
    and before its reply left; the sink retried the whole batch and the call's timeline got its entries twice.
    Here a proxy lets EXEC through and cuts the connection before the reply: the retry must find the batch
    applied, so every stream entry (timeline or transcript, and the alert) is there once."""
    port = int(stack.redis_url.rsplit(":", 1)[1].split("/")[0])
    direct = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    keys, cid = Keys(), f"lost-reply-{tier}"
    alerts_before = direct.xlen(keys.alerts)

    async def scenario():
        proxy = await DroppingProxy(port).start()
        client = aioredis.from_url(f"redis://127.0.0.1:{proxy.port}/0")
        metrics = WorkerMetrics(CollectorRegistry())
        if tier == "worker":
            sink, first, second = RedisSink(client, Settings(), metrics), batch(cid, END_TS), batch(cid, END_TS + 1)
            first.alerts.append(Alert("a-w", cid, "customer_anger", "warning", "customer", "open", 0.7, 0.6, 1.0, END_TS, "m"))
        else:
            sink = TranscriptRedisSink(client, Settings(), metrics, maxlen=1000)
            first, second = tx_batch(cid, END_TS), TranscriptBatch(call_fields={cid: {"status": "ended"}})
        proxy.lose_next_reply = True
        await asyncio.wait_for(sink.write(first), 30)
        lost = proxy.replies_lost
        await sink.write(second)   # the next transaction is not mistaken for an applied one
        found = metrics.redis_replies_lost._value.get()
        await client.aclose()
        await proxy.close()
        return lost, found

    lost, found = asyncio.run(scenario())
    assert lost == 1, "the proxy did not cut a reply"
    stream = keys.timeline(cid) if tier == "worker" else keys.transcript(cid)
    assert direct.xlen(stream) == (2 if tier == "worker" else 1)
    assert direct.xlen(keys.alerts) == alerts_before + 1
    assert found == 1
    if tier == "transcriber":
        assert direct.hget(keys.transcriber(cid), "status") == "ended"
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
    at, t = 1_764_028_834.712345, 12_345.678901   # a capture time, and 3.4 h into a call
    alert = Alert("a1", "c-times", "customer_anger", "warning", "customer", "open", 0.61234567, 0.6, t, at, "m")
    client = aioredis.from_url(stack.redis_url)
    asyncio.run(RedisSink(client, Settings(), WorkerMetrics(CollectorRegistry())).write(BatchResult(alerts=[alert])))
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    _, fields = r.xrevrange(Keys().alerts, count=1)[0]
    assert abs(float(fields["at"]) - at) < 1e-6 and abs(float(fields["t"]) - t) < 1e-6
    assert float(fields["value"]) == 0.612346
