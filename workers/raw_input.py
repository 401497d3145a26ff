"""The input topics' messages handed from Faust's fetcher to the agent in batches, without Faust's per-event path.

Faust (faust-streaming 0.15.3) delivers each fetched message through its conductor's handler: flow-control and
producer-buffer waits, a decoded ``Event``, a put on the stream's queue; then the stream's iterator takes it off
again, runs the processors and yields it, and ``Stream.ack`` acknowledges it. Measured with the worker's core
replaced by one that only acknowledges (``scripts/bench_intake.py``, 200 calls x 30 s): 49-83 us of CPU per
message, against 9-13 us for aiokafka's own consumer reading the same backlog; this way 22-34 us. The worker uses
none of what that path adds: it reads the raw key and value, it batches, and it acknowledges after its writes.

``RawInput.install`` gives the conductor, for the input topics' partitions only, a handler that appends the
message to a bounded buffer; ``batches`` hands the buffer out whenever the caller is ready (greedy: a busy core
gets what gathered meanwhile, up to ``max_batch``, and an idle one each message at once). What Faust's stream
did for the acknowledgement bookkeeping is kept: the agent marks a message pending when it takes it into a
batch (``Consumer.track_message``) and acknowledges it with ``Consumer.ack`` after its effects are
written, so commits, ``wait_empty`` at a rebalance and the committed offsets behave as before. A full buffer
makes the fetcher's hand-over wait (the fetcher's ``wait_first`` abandons that wait when a rebalance suspends the
flow; Faust's own pause of partitions under queue pressure, which left its fetcher idle for up to 1 s, is not
involved); a rebalance empties the buffer (``clear``), as Faust's flow control empties the stream queues:
nothing in it was tracked, and the new assignment reads it again from the committed offsets.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Callable

_INSTALLED = "_callpulse_raw_input"


class RawInput:
    def __init__(self, topics: set[str], max_batch: int, max_buffered: int) -> None:
        if max_batch < 1 or max_buffered < max_batch:
            raise ValueError(f"RawInput needs 1 <= max_batch <= max_buffered, got {max_batch!r}, {max_buffered!r}")
        self.topics = frozenset(topics)
        self.max_batch = max_batch
        self.max_buffered = max_buffered
        self.buffer: list = []
        self._ready = asyncio.Event()   # something is buffered
        self._space = asyncio.Event()   # the buffer is below its bound
        self._space.set()

    def install(self, conductor: Any) -> bool:
        """Route the input topics' partitions of Faust's ``conductor`` here; idempotent. Must run before the
        conductor builds its per-partition handlers (it rebuilds them at every assignment)."""
        if getattr(conductor, _INSTALLED, False):
            return False
        original: Callable = conductor._build_handler

        def build_handler(tp: Any, channels: Any) -> Callable:
            return self.on_message if tp.topic in self.topics else original(tp, channels)

        conductor._build_handler = build_handler
        setattr(conductor, _INSTALLED, True)
        return True

    async def on_message(self, message: Any) -> None:
        """The conductor's handler: buffer the message, waiting while the buffer is full."""
        while len(self.buffer) >= self.max_buffered:
            self._space.clear()
            await self._space.wait()
        self.buffer.append(message)
        self._ready.set()

    async def batches(self, should_stop: Callable[[], bool], poll_s: float) -> AsyncIterator[list]:
        """Lists of at most ``max_batch`` buffered messages, each as soon as the caller asks and something is
        buffered; ``poll_s`` is only how often ``should_stop`` is looked at while nothing comes."""
        while not should_stop():
            if not self.buffer:
                self._ready.clear()
                try:
                    await asyncio.wait_for(self._ready.wait(), poll_s)
                except asyncio.TimeoutError:
                    continue
            batch = self.buffer[:self.max_batch]
            del self.buffer[:self.max_batch]
            self._space.set()
            if batch:
                yield batch

    def clear(self) -> int:
        """Forget everything buffered (at a rebalance); returns how many messages."""
        n = len(self.buffer)
        self.buffer.clear()
        self._space.set()
        return n
