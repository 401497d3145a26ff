"""The Kafka side shared by the emotion worker (``workers.agent``) and the transcriber (``workers.transcribe.agent``).

One Faust agent consumes ``calls.audio`` and ``calls.events`` together (same key, same partition count, so a
call's audio and events reach the same process). Faust's fetcher hands their messages straight to a buffer
(``workers.raw_input``, not through Faust's per-event stream), from which the agent takes micro-batches as soon
as it is free: whatever gathered meanwhile. The pure core runs in one executor thread so the event loop stays
free for Kafka and Redis; a lock serialises batches, timers and rebalances, so per-call state needs no other
locking. Messages are acknowledged only after their effects are written. A batch's writes (Kafka outputs, then
Redis, then the acknowledgements) run while the core works on the next batch: at most one batch's writes are in
flight, batches are written in order, and anything that needs them done first (a Redis read of call state, the
timer, a rebalance) waits for them (``_settle``). Each tier brings its core (``BatchCore``) and its two sinks;
this class owns what Kafka demands of both: records with their producer timestamps, rebalances, what the core has
read, the lag, and the caught-up marks that tell the core's wall-clock waits when they may apply
(``workers.backlog``).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Protocol

import faust

from stream import topics
from stream.settings import Settings

from . import fast_dispatch
from .batch import BatchResult, Record
from .raw_input import RawInput
from .health import Liveness
from .metrics import WorkerMetrics

log = logging.getLogger(__name__)
TIMER_INTERVAL_S = 1.0
HEARTBEAT_INTERVAL_S = 1.0
INPUT_TOPICS = (topics.AUDIO, topics.EVENTS)


class BatchCore(Protocol):
    """What the agent needs of a tier's pure core (``workers.pipeline.Pipeline``, ``TranscriptCore``)."""

    @staticmethod
    def call_id_of(record: Record) -> str | None: ...
    def needs_lookup(self, call_id: str) -> bool: ...
    def restore(self, call_id: str, fields: dict[str, str]) -> None: ...
    def process(self, records: list[Record]) -> BatchResult: ...
    def expire(self) -> BatchResult: ...
    def drop_partitions(self, partitions: set[int]) -> int: ...
    def mark_caught_up(self, keys: Iterable[tuple[str, int]]) -> None: ...


class Sink(Protocol):
    async def write(self, result: BatchResult) -> None: ...


class BatchAgent:
    def __init__(self, app: faust.App, input_topic, settings: Settings, core: BatchCore, redis_sink, kafka_sink: Sink,
                 metrics: WorkerMetrics, liveness: Liveness, agent_name: str, thread_name: str) -> None:
        self.app, self.s, self.core, self.m, self.liveness = app, settings, core, metrics, liveness
        self.redis_sink, self.kafka_sink = redis_sink, kafka_sink
        metrics.last_batch_age.set_function(liveness.last_batch_age)
        metrics.core_run_seconds.set_function(liveness.core_run_seconds)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self.lock = asyncio.Lock()
        self.emitting: asyncio.Task | None = None   # the last batch's writes, while the core works on the next
        self.revoked_generation = -1   # the consumer generation whose partitions were last revoked
        self.read_offsets: dict[tuple[str, int], int] = {}   # (topic, partition) -> offset of the last record the core read
        # buffered at most as many messages as Faust's stream queue held before (stream_buffer_maxsize)
        self.input = RawInput(set(INPUT_TOPICS), settings.batch_max_messages,
                              max(settings.batch_max_messages, app.conf.stream_buffer_maxsize))
        self.input.install(app.topics)   # app.topics is Faust's conductor
        app.agent(input_topic, name=agent_name)(self.consume)
        app.timer(TIMER_INTERVAL_S)(self.tick)
        app.timer(HEARTBEAT_INTERVAL_S)(self.heartbeat)
        app.on_partitions_revoked.connect(self.on_revoked)

    async def consume(self, stream: faust.StreamT) -> None:
        """The agent: Faust runs it over the input topics' stream, which stays empty (``workers.raw_input``);
        ``stream`` only says when to stop."""
        consumer = self.app.consumer
        fast_dispatch.install(consumer)
        try:
            async for batch in self.input.batches(lambda: stream.should_stop, self.s.batch_within_s):
                async with self.lock:
                    messages = self._current(batch)
                    if not messages:
                        continue
                    for m in messages:   # pending until acknowledged, as Faust's stream would have marked them
                        consumer.track_message(m)
                    records = [Record(m.topic, m.key, m.value, m, m.partition, timestamp=m.timestamp) for m in messages]
                    await self._restore_unknown(records)
                    result = await self._core(self.core.process, records)
                    await self._settle()
                    self.emitting = asyncio.ensure_future(self._emit(result))
                    for m in messages:
                        key = (m.topic, m.partition)
                        self.read_offsets[key] = max(m.offset, self.read_offsets.get(key, -1))
                _forget_payloads(messages, result.acks)
        finally:   # a stopping agent still writes and acknowledges what it processed
            await asyncio.shield(self._settle())

    async def _settle(self) -> None:
        """Wait until the batch in flight is written and acknowledged (its error, if any, is raised here)."""
        emitting, self.emitting = self.emitting, None
        if emitting is not None:
            await emitting

    def _current(self, messages: list) -> list:
        """Drop messages fetched before the last rebalance. The batcher may hold a batch across a revocation; its
        calls were just released, and the new assignment re-reads these messages from the committed offsets.
        Processing them first would restore a call from Redis and then see its audio jump ahead of the anchor
        (seen once after a broker restart: the call came out identical but for 1 s of audio counted as a gap)."""
        current = self.app.consumer_generation_id
        if current == self.revoked_generation:   # revoked, not yet assigned again: everything in hand is stale
            fresh = []
        else:   # as faust's own per-event check: only messages fetched in the current generation
            fresh = [m for m in messages if m.generation_id is None or m.generation_id == current]
        if len(fresh) < len(messages):
            log.info("rebalance: skipped %d messages fetched before it (they are read again)",
                     len(messages) - len(fresh))
        return fresh

    async def _core(self, fn, *args):
        """Run the core in its thread, timed for the liveness probe."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.liveness.run, fn, *args)

    async def heartbeat(self) -> None:
        """Proves the event loop runs (the tick cannot: it waits for the core's lock)."""
        self.liveness.beat()

    async def _restore_unknown(self, records: list[Record]) -> None:
        wanted = {cid for r in records if (cid := self.core.call_id_of(r)) and self.core.needs_lookup(cid)}
        if wanted:
            await self._settle()   # the batch in flight may hold the state (or the end) of a call read here
            for cid, fields in (await self.redis_sink.load_calls(sorted(wanted))).items():
                self.core.restore(cid, fields)

    async def _emit(self, result: BatchResult) -> None:
        await self.kafka_sink.write(result)
        await self.redis_sink.write(result)
        ack = self.app.consumer.ack
        for message in result.acks:
            ack(message)

    async def tick(self) -> None:
        """Timeouts once a second, then the lag."""
        self.before_tick()
        async with self.lock:
            await self._settle()
            result = await self._core(self.core.expire)
            await self._emit(result)
            self.after_tick()
        await self._update_lag()

    def before_tick(self) -> None:
        """A tier's own once-a-second work outside the lock."""

    def after_tick(self) -> None:
        """A tier's own once-a-second work under the lock, after the timeouts."""

    async def _update_lag(self) -> None:
        """Lag = the broker's end of each partition minus what the core has read (not what the consumer has
        fetched: a stuck core shows as growing lag); the gauge shows the audio partitions. A partition read to
        its end is caught up: the core's wall-clock waits apply to it again (see ``workers.backlog``)."""
        consumer = self.app.consumer
        caught_up = set()
        try:
            for tp in consumer.assignment():
                if tp.topic not in INPUT_TOPICS:
                    continue
                highwater = consumer.highwater(tp)
                if highwater is None:
                    continue
                read = self.read_offsets.get((tp.topic, tp.partition))
                position = read + 1 if read is not None else await consumer.position(tp)
                if position is None:
                    continue
                lag = highwater - position
                if tp.topic == topics.AUDIO:
                    self.m.consumer_lag.labels(str(tp.partition)).set(max(lag, 0))
                if lag <= 0:
                    caught_up.add((tp.topic, tp.partition))
        except Exception as exc:  # lag is best effort; never stop the worker for it
            log.debug("lag update failed: %r", exc)
        if caught_up:
            async with self.lock:
                self.core.mark_caught_up(caught_up)

    async def on_revoked(self, sender, revoked, **kwargs) -> None:
        parts = {tp.partition for tp in revoked if tp.topic in INPUT_TOPICS}
        if parts:
            async with self.lock:
                await self._settle()   # acknowledge what was processed before the partitions' offsets are committed
                self.revoked_generation = self.app.consumer_generation_id
                self.input.clear()
                for key in [k for k in self.read_offsets if k[1] in parts]:
                    del self.read_offsets[key]
                n = self.core.drop_partitions(parts)
            log.info("rebalance: released %d calls of partitions %s", n, sorted(parts))


def _forget_payloads(messages, acked) -> None:
    """Held messages are kept only to be acknowledged later; their decoded audio already lives in the leg
    buffers, so drop the raw bytes now (about 40 kB per live call at 500 ms chunks)."""
    done = {id(e) for e in acked}
    for message in messages:
        if id(message) not in done:
            message.value = None
