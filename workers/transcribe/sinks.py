"""Where the transcriber's batch goes: Redis (transcript streams, its per-call hash, cue alerts) in one MULTI/EXEC,
and Kafka (calls.transcripts, calls.alerts, calls.audio.dlq) confirmed by the broker. Both before any ack."""

from __future__ import annotations

import asyncio
import json
import time

from stream import finite_json
from workers.sinks import RedisSink, alert_fields, dead_letter_message

from .core import TranscriptBatch


class TranscriptRedisSink(RedisSink):
    """Idempotent across restarts: segments and the state that says they were written go in one transaction,
    so a restarted transcriber resumes after the last written utterance and never writes one twice."""

    def __init__(self, client, settings, metrics, maxlen: int) -> None:
        super().__init__(client, settings, metrics)
        self.maxlen = maxlen

    def state_key(self, call_id: str) -> str:
        return self.keys.transcriber(call_id)

    async def write(self, result: TranscriptBatch) -> None:
        if not (result.call_fields or result.segments or result.alerts):
            return
        t0 = time.perf_counter()
        # exactly once, from a fresh pipeline per attempt (workers.sinks.RedisSink._write_once)
        await self._write_once(lambda: self._transcript_pipeline(result))
        self.m.redis_write_seconds.observe(time.perf_counter() - t0)
        now = time.time()
        for ts in result.step_capture_ts:
            self.m.transcript_latency.observe(max(now - ts, 0.0))

    def _transcript_pipeline(self, result: TranscriptBatch):
        k, ended = self.keys, set(result.ended)
        ttl = lambda cid: self.s.ended_ttl_s if cid in ended else self.s.active_ttl_s   # noqa: E731
        pipe = self.r.pipeline(transaction=True)
        streams = set()
        for seg in result.segments:
            cid = seg["call_id"]
            pipe.xadd(k.transcript(cid), segment_fields(seg), maxlen=self.maxlen, approximate=True)
            streams.add(cid)
        for cid in streams | set(result.call_fields):
            pipe.expire(k.transcript(cid), ttl(cid))   # no-op on a call with no segment yet
        for cid, fields in result.call_fields.items():
            pipe.hset(k.transcriber(cid), mapping=fields)
            pipe.expire(k.transcriber(cid), ttl(cid))
        for alert in result.alerts:
            pipe.xadd(k.alerts, alert_fields(alert), maxlen=self.s.alerts_maxlen, approximate=True)
        return pipe


class TranscriptKafkaSink:
    def __init__(self, transcripts_topic, alerts_topic, dlq_topic, metrics) -> None:
        self.transcripts, self.alerts, self.dlq, self.m = transcripts_topic, alerts_topic, dlq_topic, metrics

    async def write(self, result: TranscriptBatch) -> None:
        futures = []
        for seg in result.segments:
            futures.append(await self.transcripts.send(key=seg["call_id"].encode(), value=json.dumps(seg, ensure_ascii=False).encode()))
        for alert in result.alerts:
            futures.append(await self.alerts.send(key=alert.call_id.encode(), value=finite_json.dumps(alert.to_dict()).encode()))
        for dead in result.dead:
            key, value, headers = dead_letter_message(dead)
            futures.append(await self.dlq.send(key=key, value=value, headers=headers + [("consumer", b"transcriber")]))
            self.m.dead_letters.labels(dead.reason).inc()
        if futures:
            await asyncio.gather(*futures)


def segment_fields(seg: dict) -> dict[str, str]:
    """A segment as stream fields. Numbers keep the precision the core rounded them to (call times in ms, the
    capture time in ms): the workers' 4-significant-digit alert formatting would turn 1234.5 s into 1234."""
    out = {}
    for f, v in seg.items():
        if f == "call_id":
            continue
        out[f] = json.dumps(v) if f == "cues" else str(v)
    return out
