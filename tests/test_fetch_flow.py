"""workers.fetch_flow against Faust's real conductor handler (no broker is contacted): a stream queue under
pressure must not take its partition out of the fetch, and a full queue must still hold the hand-over back."""

from __future__ import annotations

import asyncio

import faust
from faust.types import TP, Message

from workers import fetch_flow

NEVER_CONTACTED = "kafka://127.0.0.1:9"
QUEUE_MAXSIZE = 10          # Faust's high pressure comes at maxsize / 1.25 = 8 queued events
TP0 = TP("calls.audio", 0)


def message(offset: int) -> Message:
    return Message(TP0.topic, TP0.partition, offset, 0.0, 0, {}, b"call-1", b"payload", None, tp=TP0)


async def deliver(install: bool, messages: int) -> tuple[set, int, bool]:
    """Hand ``messages`` messages over through the conductor's handler for TP0; returns the consumer's active
    partitions afterwards, the stream's queue length, and whether the last hand-over had to wait."""
    app = faust.App("fetch-flow-test", broker=NEVER_CONTACTED, autodiscover=False, web_enabled=False,
                    stream_buffer_maxsize=QUEUE_MAXSIZE)
    app.flow_control.resume()
    topic = app.topic(TP0.topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    channel = topic.__aiter__()        # the iterating clone a stream reads from (it subscribes to the conductor)
    consumer = app.consumer
    if install:
        assert fetch_flow.install(consumer)
        assert not fetch_flow.install(consumer)   # idempotent
    consumer._active_partitions = {TP0}
    handler = app.topics._build_handler(TP0, {channel})
    for offset in range(messages - 1):
        await handler(message(offset))
    last = asyncio.ensure_future(handler(message(messages - 1)))
    await asyncio.sleep(0.05)
    waited = not last.done()
    last.cancel()
    await asyncio.gather(last, return_exceptions=True)
    return set(consumer._get_active_partitions()), channel.queue.qsize(), waited


def test_faust_alone_takes_a_pressed_partition_out_of_the_fetch():
    active, queued, waited = asyncio.run(deliver(install=False, messages=9))
    assert TP0 not in active and queued == 9 and not waited


def test_installed_the_partition_stays_in_the_fetch_under_pressure():
    active, queued, waited = asyncio.run(deliver(install=True, messages=9))
    assert TP0 in active and queued == 9 and not waited


def test_installed_a_full_queue_still_holds_the_hand_over_back():
    active, queued, waited = asyncio.run(deliver(install=True, messages=QUEUE_MAXSIZE + 1))
    assert TP0 in active and queued == QUEUE_MAXSIZE and waited
