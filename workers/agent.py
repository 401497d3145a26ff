"""The Faust agent: the only place where Kafka, the pure core and the sinks meet.

One agent consumes ``calls.audio`` and ``calls.events`` together (same key, same partition count, so a
call's audio and events reach the same worker), in micro-batches. The core runs in one executor thread so
the event loop stays free for Kafka and Redis; a lock serialises batches, timers and rebalances, so
per-call state needs no other locking. Messages are acknowledged only after their effects are written.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from statistics import fmean

import faust
import redis.asyncio as aioredis

from stream import topics
from stream.app import create_app, declare_topics
from stream.settings import Settings

from .health import Liveness, start_http_endpoint
from .inference import Models
from .kpi_job import make_kpi_job
from .metrics import METRICS, WorkerMetrics
from .pipeline import BatchResult, Pipeline, Record
from .rules import RuleEngine, RuleSet
from .sinks import KafkaSink, RedisSink

log = logging.getLogger(__name__)
TIMER_INTERVAL_S = 1.0
HEARTBEAT_INTERVAL_S = 1.0


class Worker:
    def __init__(self, settings: Settings, metrics: WorkerMetrics = METRICS, app: faust.App | None = None,
                 liveness: Liveness | None = None) -> None:
        if not settings.worker_name:
            settings = settings.model_copy(update={"worker_name": socket.gethostname()})
        self.s = settings
        self.m = metrics
        self.liveness = liveness or Liveness(settings.liveness_stuck_after_s)
        metrics.last_batch_age.set_function(self.liveness.last_batch_age)
        metrics.core_run_seconds.set_function(self.liveness.core_run_seconds)
        self.app = app or create_app(settings)
        self.topics = declare_topics(self.app, settings)
        models = Models(settings.model_dir or None, threads=settings.onnx_threads)
        self.rules = _load_rules(settings)
        self.pipeline = Pipeline(settings, models, models.emotion.labels, metrics, self.rules)
        self.redis = aioredis.from_url(settings.redis_url)
        self.redis_sink = RedisSink(self.redis, settings, metrics)
        self.kafka_sink = KafkaSink(self.topics["alerts"], self.topics["summaries"], self.topics["dlq"], metrics)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callpulse-core")
        self.lock = asyncio.Lock()
        self.stream = None
        self.app.agent(self.topics["input"], name="callpulse.analyse")(self.consume)
        self.app.timer(TIMER_INTERVAL_S)(self.tick)
        self.app.timer(HEARTBEAT_INTERVAL_S)(self.heartbeat)
        self.app.on_partitions_revoked.connect(self.on_revoked)
        self.app.timer(settings.kpi_interval_s, on_leader=True)(make_kpi_job(self.redis, settings, metrics))

    async def consume(self, stream: faust.StreamT) -> None:
        self.stream = stream
        async for events in stream.noack_take(self.s.batch_max_messages, within=self.s.batch_within_s):
            records = [Record(e.message.topic, e.message.key, e.message.value, e, e.message.partition) for e in events]
            async with self.lock:
                await self._restore_unknown(records)
                result = await self._core(self.pipeline.process, records)
                await self._emit(result)
            _forget_payloads(events, result.acks)

    async def _core(self, fn, *args):
        """Run the core in its thread, timed for the liveness probe."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.liveness.run, fn, *args)

    async def heartbeat(self) -> None:
        """Proves the event loop runs (the tick cannot: it waits for the core's lock)."""
        self.liveness.beat()

    async def _restore_unknown(self, records: list[Record]) -> None:
        wanted = {cid for r in records if (cid := Pipeline.call_id_of(r)) and self.pipeline.needs_lookup(cid)}
        if wanted:
            for cid, fields in (await self.redis_sink.load_calls(sorted(wanted))).items():
                self.pipeline.restore(cid, fields)

    async def _emit(self, result: BatchResult) -> None:
        await self.kafka_sink.write(result)
        await self.redis_sink.write(result)
        if self.stream is not None:
            for event in result.acks:
                await self.stream.ack(event)

    async def tick(self) -> None:
        """Timeouts, alert-rule reloads and gauges, once a second."""
        self.rules.maybe_reload()
        async with self.lock:
            result = await self._core(self.pipeline.expire)
            await self._emit(result)
            self._update_gauges()
        await self._update_lag()

    def _update_gauges(self) -> None:
        by_queue: dict[str, list[float]] = {}
        for call in self.pipeline.calls.values():
            s = call.scores["customer"].sentiment_avg
            if s is not None:
                by_queue.setdefault(call.meta.get("queue") or "unknown", []).append(s)
        for queue, values in by_queue.items():
            self.m.live_sentiment.labels(queue).set(fmean(values))

    async def _update_lag(self) -> None:
        consumer = self.app.consumer
        try:
            for tp in consumer.assignment():
                if tp.topic != topics.AUDIO:
                    continue
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
                if position is not None and highwater is not None:
                    self.m.consumer_lag.labels(str(tp.partition)).set(max(highwater - position, 0))
        except Exception as exc:  # lag is best effort; never stop the worker for it
            log.debug("lag update failed: %r", exc)

    async def on_revoked(self, sender, revoked, **kwargs) -> None:
        parts = {tp.partition for tp in revoked if tp.topic in (topics.AUDIO, topics.EVENTS)}
        if parts:
            async with self.lock:
                n = self.pipeline.drop_partitions(parts)
            log.info("rebalance: released %d calls of partitions %s", n, sorted(parts))


def _forget_payloads(events, acked) -> None:
    """Held messages are kept only to be acknowledged later; their decoded audio already lives in the leg
    buffers, so drop the raw bytes now (about 40 kB per live call at 500 ms chunks)."""
    done = {id(e) for e in acked}
    for event in events:
        if id(event) not in done:
            event.message.value = None
            event.value = None


def _load_rules(settings: Settings) -> RuleEngine:
    path = settings.rules_path or str(Path(__file__).with_name("default_rules.yaml"))
    return RuleEngine(RuleSet.load(path), path, step_s=settings.hop_s)


def run_worker(settings: Settings, metrics_port: int | None = None, loglevel: str = "info") -> None:
    """Start the metrics and health endpoint (``/metrics``, ``/healthz``) and run a worker until interrupted."""
    port = settings.metrics_port if metrics_port is None else metrics_port
    liveness = Liveness(settings.liveness_stuck_after_s)
    if port:
        start_http_endpoint(port, settings.metrics_host, liveness)
    worker = Worker(settings, liveness=liveness)
    faust.Worker(worker.app, loglevel=loglevel, quiet=True).execute_from_commandline()
