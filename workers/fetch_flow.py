"""Backpressure on Faust's fetcher by blocking the hand-over, not by taking partitions out of the fetch.

Faust (faust-streaming 0.15.3, ``transport/conductor.py``, after faust-streaming #53) takes a topic partition out
of the consumer's active partitions when the stream's queue comes under "high pressure" (``maxsize / 1.25``
events) and puts it back once the queue has drained to 40 %. The fetcher's ``getmany`` that began while the
partitions were out does not wake when they come back: aiokafka already holds their prefetched records, it
sends that broker no new fetch while any partition's records are unconsumed, and so ``getmany`` sleeps out its
whole 1 s timeout. Measured in a drain of 150 calls x 30 s: every 1.2-1.4 s the worker's queue ran empty and
it idled 0.7-1.0 s; it used 48 % of its core.

The pause is there so that one slow agent cannot starve the others fed by the same fetcher. A callpulse worker
has one agent over both input topics, so there is nobody to starve. ``install`` leaves every assigned partition
in the fetch: a full queue blocks the fetcher's hand-over instead (Faust's own ``await channel.put`` path, which
a rebalance's flow suspension still abandons), and what the worker holds stays bounded by the queue's
``stream_buffer_maxsize`` plus aiokafka's one prefetched fetch per partition (``consumer_max_fetch_size``).
"""

from __future__ import annotations

from typing import Any

_INSTALLED = "_callpulse_blocking_backpressure"


def install(consumer: Any) -> bool:
    """Make ``consumer`` (Faust's consumer) keep partitions in the fetch under queue pressure; idempotent.

    Must run before the conductor builds its per-partition handlers (they bind ``on_buffer_full`` then); it
    rebuilds them at every assignment, so installing when the agent starts covers the first one.
    False if ``consumer`` has no ``on_buffer_full`` (a Faust without this flow control)."""
    if not hasattr(consumer, "on_buffer_full") or getattr(consumer, _INSTALLED, False):
        return False
    consumer.on_buffer_full = _keep_fetching
    setattr(consumer, _INSTALLED, True)
    return True


def _keep_fetching(tp: Any) -> None:
    """A full queue is handled where the event is put (the hand-over waits for space)."""
