"""A cheaper hand-over of each fetched Kafka message from Faust's fetcher to the agent.

Faust's fetcher (``faust.transport.consumer.Consumer._drain_messages``, faust-streaming 0.15.3) hands every record
over with ``await self.wait_first(callback(message), self.suspend_flow.wait())``: for each message, four tasks
(the callback, the flow-suspension wait and mode's stopped and crashed waits), an ``asyncio.wait`` and three
cancellations, about 50 us of CPU, while the callback itself (append the message to the agent's buffer,
``workers.raw_input``) almost always finishes without waiting. ``install`` gives the consumer a ``wait_first`` that
first runs the callback directly; only a callback that has to wait (the buffer is full) goes on through mode's own
``wait_first``, so the callback can still be abandoned when the flow is suspended for a rebalance, exactly as
before. A callback that finishes at once was delivered in the old path too (its task ran first and the result was
the same), and the fetcher ignores what ``wait_first`` returns, so what the agent receives does not change.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from mode.services import WaitResults

_INSTALLED = "_callpulse_fast_dispatch"


def install(consumer: Any) -> bool:
    """Give ``consumer`` (Faust's consumer) the fast ``wait_first``; idempotent. False if it has none to replace."""
    original = getattr(consumer, "wait_first", None)
    if original is None or getattr(consumer, _INSTALLED, False):
        return False
    consumer.wait_first = types.MethodType(_fast_wait_first(original), consumer)
    setattr(consumer, _INSTALLED, True)
    return True


def _fast_wait_first(original: Callable[..., Awaitable[WaitResults]]) -> Callable[..., Coroutine[Any, Any, WaitResults]]:
    async def wait_first(self: Any, *coros: Any, timeout: float | None = None) -> WaitResults:
        if len(coros) != 2 or timeout is not None or not isinstance(coros[0], Coroutine) or not isinstance(coros[1], Coroutine):
            return await original(*coros, timeout=timeout)
        callback, suspended = coros
        try:
            yielded = callback.send(None)
        except StopIteration as done:   # finished without waiting: the usual case
            suspended.close()
            return WaitResults([callback], [done.value], False)
        except BaseException:
            suspended.close()
            raise
        return await original(_finish(callback, yielded), suspended)
    return wait_first


async def _finish(coro: Coroutine, yielded: Any) -> Any:
    return await _resume(coro, yielded)


@types.coroutine
def _resume(coro: Coroutine, yielded: Any):
    """Run a coroutine that was started by hand and is suspended on ``yielded`` to its end, as ``await`` would
    have: what it yields goes to the running task, what the task sends or throws goes back into it."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:   # cancellation (or a throw) reaches the coroutine where it waits
            try:
                yielded = coro.throw(exc)
            except StopIteration as done:
                return done.value
            continue
        try:
            yielded = coro.send(sent)
        except StopIteration as done:
            return done.value
