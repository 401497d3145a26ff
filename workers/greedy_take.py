"""Micro-batches that go as soon as the core is free: whatever is queued, without waiting for a timer.

Faust's ``Stream.noack_take(max, within)`` (faust-streaming 0.15.3) hands out a batch when it holds ``max``
events or when ``within`` seconds have passed, and it starts the ``within`` wait again after every batch. At a
light load a message therefore waits up to ``within`` even when the core is idle; a shorter ``within`` cuts a
backlog's batches short as well (measured: 0.02 s instead of 0.05 s, capacity −9 %).

``greedy_take`` keeps ``noack_take``'s contract (events, not values; nothing acknowledged; at most ``max`` per
batch; new events wait while a batch is being processed) and changes only when a batch goes: as soon as the
stream's queue is empty after an event joined the buffer, or the buffer is full. While the core works on one
batch the next one gathers in the queue, so a busy core gets large batches (a backlog still gets ``max``) and an
idle one gets each message at once: the batch size follows the load. ``within`` remains only the longest wait
before the stream's stop flag is looked at again.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from mode.utils.futures import notify


async def greedy_take(stream: Any, max_: int, within: float) -> AsyncIterator[list]:
    """Yield lists of a Faust stream's events, each at most ``max_`` long, as soon as nothing more is queued."""
    if max_ < 1 or within <= 0:
        raise ValueError(f"greedy_take needs max_ >= 1 and within > 0 s, got max_={max_!r}, within={within!r}")
    buffer: list = []
    ready = asyncio.Event()      # the buffer should go: it is full, or the queue behind it is empty
    consumed = asyncio.Event()   # a full buffer was handed out
    consuming: asyncio.Future | None = None   # set while the caller processes a batch: adding waits for it
    queue = stream.channel.queue

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("greedy_take: the stream has no current event (it must iterate a topic)")
            buffer.append(event)
            if len(buffer) >= max_:
                ready.set()
                consumed.clear()
                await stream.wait(consumed)   # never more than max_ in one batch
            elif queue.empty():
                ready.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("greedy_take: error adding to the batch: %r", exc)
            await stream.crash(exc)
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False   # the caller acknowledges each event after its effects are written
    stream.add_processor(add_to_buffer)
    stream._enable_passive(stream.channel.__aiter__())
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(ready, timeout=within)
            if buffer:
                consuming = asyncio.get_running_loop().create_future()
                try:
                    yield list(buffer)
                finally:
                    buffer.clear()
                    notify(consuming)
                    ready.clear()
                    consumed.set()
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)
