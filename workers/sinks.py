"""Sinks: one class per destination. Each takes a ``BatchResult`` and writes it in as few round trips as possible."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from stream import finite_json
from stream.redis_keys import Keys
from stream.settings import Settings

from .metrics import WorkerMetrics
from .batch import BatchResult, DeadLetter
from .key_ttl import KeyTtl

log = logging.getLogger(__name__)
SUMMARY_INDEX_KEEP_S = 2 * 86_400   # the KPI job reads up to "today"; keep a margin
RETRY_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# The producer refuses requests over 1 MB (faust's producer_max_request_size); a dead letter stays far below.
MAX_DLQ_VALUE_BYTES = 65_536
MAX_DLQ_KEY_BYTES = 1_024
MAX_DLQ_HEADER_BYTES = 1_000
WRITER_KEY_TTL_S = 86_400   # a sink's last-transaction mark outlives any retry; a dead worker's mark expires


class RedisSink:
    """All Redis effects of one batch in one pipelined round trip (MULTI/EXEC, so a reader never sees half a batch).

    Exactly once: a transaction that Redis applied but whose reply never came back (Redis killed, or the link cut,
    right after EXEC) is not applied again by the retry, which would add its timeline and alert entries twice
    (`_write_once`). A live call's keys get their EXPIRE when it is due (`KeyTtl`), not with every write."""

    def __init__(self, client: aioredis.Redis, settings: Settings, metrics: WorkerMetrics) -> None:
        self.r = client
        self.s = settings
        self.keys = Keys(settings.redis_prefix)
        self.m = metrics
        self.live_ttl = KeyTtl(settings.active_ttl_s)
        self.writer_key = self.keys.writer(uuid.uuid4().hex)
        self.transactions = 0

    def state_key(self, call_id: str) -> str:
        """The hash that holds this tier's restorable state of a call."""
        return self.keys.call(call_id)

    async def load_calls(self, call_ids: list[str]) -> dict[str, dict[str, str]]:
        def build():
            pipe = self.r.pipeline(transaction=False)
            for cid in call_ids:
                pipe.hgetall(self.state_key(cid))
            return pipe
        rows = await self._retry(build)
        return {cid: {_s(k): _s(v) for k, v in row.items()} for cid, row in zip(call_ids, rows)}

    async def write(self, result: BatchResult) -> None:
        if not (result.call_fields or result.timeline or result.alerts or result.summaries or result.ended):
            return
        t0 = time.perf_counter()
        clock = time.monotonic()
        ended = set(result.ended)
        k = self.keys
        timelines = {cid for cid, _ in result.timeline}
        # the live keys whose TTL is due in this write; ended calls' keys always get the ended TTL
        expire_live = [key for key in [k.call(c) for c in result.call_fields if c not in ended]
                       + [k.timeline(c) for c in timelines if c not in ended] if self.live_ttl.due(key, clock)]
        await self._write_once(lambda: self._batch_pipeline(result, ended, timelines, expire_live))
        self.live_ttl.mark_set(expire_live, clock)
        self.live_ttl.forget([k.call(c) for c in ended] + [k.timeline(c) for c in ended])
        self.m.redis_write_seconds.observe(time.perf_counter() - t0)
        now = time.time()
        for ts in result.step_capture_ts:
            self.m.e2e_latency.observe(max(now - ts, 0.0))

    def _batch_pipeline(self, result: BatchResult, ended: set[str], timelines: set[str],
                        expire_live: list[str]) -> aioredis.client.Pipeline:
        k = self.keys
        pipe = self.r.pipeline(transaction=True)
        for cid, fields in result.call_fields.items():
            pipe.hset(k.call(cid), mapping=fields)
        for cid, entry in result.timeline:
            pipe.xadd(k.timeline(cid), entry, maxlen=self.s.timeline_maxlen, approximate=True)
        for key in expire_live:
            pipe.expire(key, self.s.active_ttl_s)
        for cid in ended:
            if cid in result.call_fields:
                pipe.expire(k.call(cid), self.s.ended_ttl_s)
            if cid in timelines:
                pipe.expire(k.timeline(cid), self.s.ended_ttl_s)
        if result.risks:
            pipe.zadd(k.active, result.risks)
        if ended:
            pipe.zrem(k.active, *ended)
        for alert in result.alerts:
            pipe.xadd(k.alerts, alert_fields(alert), maxlen=self.s.alerts_maxlen, approximate=True)
        for summary in result.summaries:
            pipe.set(k.summary(summary["call_id"]), finite_json.dumps(summary), ex=self.s.summary_ttl_s)
            pipe.zadd(k.summaries, {summary["call_id"]: summary["ended_at"]})
        if result.summaries:
            pipe.zremrangebyscore(k.summaries, "-inf", time.time() - SUMMARY_INDEX_KEEP_S)
        return pipe

    async def _write_once(self, build: Callable[[], aioredis.client.Pipeline]) -> None:
        """Apply the transaction that ``build`` makes exactly once. It also sets this sink's key to the
        transaction's number; a retry first reads that key back, and a transaction found applied is done."""
        self.transactions += 1
        number = str(self.transactions)

        def stamped():
            return build().set(self.writer_key, number, ex=WRITER_KEY_TTL_S)

        async def applied() -> bool:
            if _s(await self.r.get(self.writer_key) or b"") != number:
                return False
            self.m.redis_replies_lost.inc()
            log.warning("Redis applied the last write but its reply was lost; not writing it again")
            return True
        await self._retry(stamped, applied)

    async def _retry(self, build: Callable[[], aioredis.client.Pipeline],
                     applied: Callable[[], Awaitable[bool]] | None = None):
        """Redis down must not lose data: retry with backoff (the batch stays unacknowledged meanwhile).

        ``build`` makes a fresh pipeline for every attempt: redis-py empties a pipeline whose ``execute``
        failed, and re-running that empty pipeline "succeeded" with ``[]`` and lost the whole batch.
        ``applied``, if given, is asked before each retry whether the failed attempt took effect after all."""
        attempt = 0
        while True:
            try:
                if attempt and applied is not None and await applied():
                    return None
                return await build().execute()
            except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
                self.m.redis_errors.inc()
                delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                log.warning("Redis unavailable (%s); retrying in %.2f s", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)


class KafkaSink:
    """Alerts, summaries and dead letters to their topics. Waits for the broker's acknowledgement, so a batch's
    input is acknowledged only once its outputs are durable."""

    def __init__(self, alerts_topic, summaries_topic, dlq_topic, metrics: WorkerMetrics) -> None:
        self.alerts = alerts_topic
        self.summaries = summaries_topic
        self.dlq = dlq_topic
        self.m = metrics

    async def write(self, result: BatchResult) -> None:
        futures = []
        for alert in result.alerts:
            futures.append(await self.alerts.send(key=alert.call_id.encode(), value=finite_json.dumps(alert.to_dict()).encode()))
        for summary in result.summaries:
            futures.append(await self.summaries.send(key=summary["call_id"].encode(), value=finite_json.dumps(summary).encode()))
        for dead in result.dead:
            key, value, headers = dead_letter_message(dead)
            futures.append(await self.dlq.send(key=key, value=value, headers=headers))
            self.m.dead_letters.labels(dead.reason).inc()
        if futures:
            await asyncio.gather(*futures)


def dead_letter_message(dead: DeadLetter) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) of a dead letter. A value or key too large for the producer (the broker accepted it,
    but our producer's request limit is lower) is cut to its first bytes, and the headers say so and give the
    original size: the record still lands in the DLQ, with its reason, instead of failing the batch forever."""
    rec = dead.record
    headers = [("reason", dead.reason.encode()), ("error", dead.message.encode()[:MAX_DLQ_HEADER_BYTES]),
               ("source_topic", rec.topic.encode())]
    if rec.partition is not None:
        headers.append(("source_partition", str(rec.partition).encode()))
    key, value = rec.key, rec.value
    if value is not None and len(value) > MAX_DLQ_VALUE_BYTES:
        headers += [("truncated", b"value"), ("original_value_bytes", str(len(value)).encode())]
        value = bytes(value[:MAX_DLQ_VALUE_BYTES])
    if key is not None and len(key) > MAX_DLQ_KEY_BYTES:
        headers += [("truncated_key", b"true"), ("original_key_bytes", str(len(key)).encode())]
        key = bytes(key[:MAX_DLQ_KEY_BYTES])
    return key, value, headers


def _s(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


FIELD_DECIMALS = 6


def alert_fields(alert) -> dict[str, str]:
    """An alert as the fields of its entry in the alert stream (both tiers write alerts there)."""
    return {f: _field(v) for f, v in alert.to_dict().items()}


def _field(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):   # to the microsecond: `at` is an epoch time (4 significant digits made it 1.764e+09)
        return repr(round(v, FIELD_DECIMALS))
    if isinstance(v, (dict, list)):
        return finite_json.dumps(v, separators=(",", ":"))
    return str(v)
