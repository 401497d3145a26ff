"""``callpulse transcriber``: the Faust agent of the transcription tier.

Its own consumer group (``CALLPULSE_TRANSCRIBER_APP_ID``) on calls.audio + calls.events, so it scales on its own
lag and never slows the emotion workers. As in ``workers.agent``: micro-batches, the core (VAD cutting and the
recogniser, seconds of CPU) in one executor thread so Kafka heartbeats go on, a lock serialising batches, timers
and rebalances, and messages acknowledged only after their effects are written.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from concurrent.futures import ThreadPoolExecutor

import faust
import redis.asyncio as aioredis
from prometheus_client import start_http_server

from stream import topics
from stream.app import create_app, declare_topics, raw_topic
from stream.settings import Settings
from workers.agent import _forget_payloads
from workers.batch import Record
from workers.cues import DEFAULT_CUES, CueSet
from workers.metrics import METRICS, WorkerMetrics

from .core import TranscriptBatch, TranscriptCore
from .settings import TranscriberSettings
from .sinks import TranscriptKafkaSink, TranscriptRedisSink

log = logging.getLogger(__name__)
TIMER_INTERVAL_S = 1.0


class TranscriberWorker:
    def __init__(self, settings: Settings, tx: TranscriberSettings, recognizer, metrics: WorkerMetrics = METRICS) -> None:
        settings = settings.model_copy(update={"app_id": tx.transcriber_app_id,
                                               "batch_max_messages": tx.transcriber_batch_max_messages,
                                               "worker_name": settings.worker_name or socket.gethostname()})
        self.s, self.tx, self.m = settings, tx, metrics
        self.app = create_app(settings)
        self.topics = declare_topics(self.app, settings)
        transcripts = raw_topic(self.app, topics.TRANSCRIPTS, partitions=settings.partitions)
        cues = CueSet.load(tx.cues_path or DEFAULT_CUES)
        self.core = TranscriptCore(settings, recognizer, cues, metrics, default_language=tx.transcriber_language)
        self.redis = aioredis.from_url(settings.redis_url)
        self.redis_sink = TranscriptRedisSink(self.redis, settings, metrics, tx.transcript_maxlen)
        self.kafka_sink = TranscriptKafkaSink(transcripts, self.topics["alerts"], self.topics["dlq"], metrics)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callpulse-transcriber")
        self.lock = asyncio.Lock()
        self.stream = None
        self.app.agent(self.topics["input"], name="callpulse.transcribe")(self.consume)
        self.app.timer(TIMER_INTERVAL_S)(self.tick)
        self.app.on_partitions_revoked.connect(self.on_revoked)

    async def consume(self, stream: faust.StreamT) -> None:
        self.stream = stream
        async for events in stream.noack_take(self.s.batch_max_messages, within=self.s.batch_within_s):
            records = [Record(e.message.topic, e.message.key, e.message.value, e, e.message.partition) for e in events]
            async with self.lock:
                await self._restore_unknown(records)
                result = await asyncio.get_running_loop().run_in_executor(self.executor, self.core.process, records)
                await self._emit(result)
            _forget_payloads(events, result.acks)

    async def _restore_unknown(self, records: list[Record]) -> None:
        wanted = {cid for r in records if (cid := self.core.call_id_of(r)) and self.core.needs_lookup(cid)}
        if wanted:
            for cid, fields in (await self.redis_sink.load_calls(sorted(wanted))).items():
                self.core.restore(cid, fields)

    async def _emit(self, result: TranscriptBatch) -> None:
        await self.kafka_sink.write(result)
        await self.redis_sink.write(result)
        if self.stream is not None:
            for event in result.acks:
                await self.stream.ack(event)

    async def tick(self) -> None:
        async with self.lock:
            result = await asyncio.get_running_loop().run_in_executor(self.executor, self.core.expire)
            await self._emit(result)

    async def on_revoked(self, sender, revoked, **kwargs) -> None:
        parts = {tp.partition for tp in revoked if tp.topic in (topics.AUDIO, topics.EVENTS)}
        if parts:
            async with self.lock:
                n = self.core.drop_partitions(parts)
            log.info("rebalance: released %d calls of partitions %s", n, sorted(parts))


def run_transcriber(settings: Settings, tx: TranscriberSettings, metrics_port: int | None = None, loglevel: str = "info") -> int:
    if not tx.transcripts_enabled:
        log.warning("CALLPULSE_TRANSCRIPTS_ENABLED is false: the transcriber does not run")
        print("transcripts are disabled (CALLPULSE_TRANSCRIPTS_ENABLED=false); not starting the transcriber")
        return 0
    from .recognizer import Recognizer
    recognizer = Recognizer(threads=tx.transcriber_threads)   # verifies the model's sha256 before anything starts
    port = tx.transcriber_metrics_port if metrics_port is None else metrics_port
    if port:
        start_http_server(port, addr=settings.metrics_host)
    worker = TranscriberWorker(settings, tx, recognizer)
    faust.Worker(worker.app, loglevel=loglevel, quiet=True).execute_from_commandline()
    return 0
