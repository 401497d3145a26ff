"""workers.raw_input against Faust's real conductor (no broker is contacted): the input topics' messages reach the
agent's buffer and nothing else, batches follow the load, and a full buffer holds the fetcher's hand-over back."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types import TP, Message

from workers.raw_input import RawInput

NEVER_CONTACTED = "kafka://127.0.0.1:9"
AUDIO0, EVENTS3, OTHER0 = TP("calls.audio", 0), TP("calls.events", 3), TP("calls.alerts", 0)
POLL_S = 0.01


def message(tp: TP, offset: int) -> Message:
    return Message(tp.topic, tp.partition, offset, 0.0, 0, {}, b"call-1", b"payload", None, tp=tp)


def conductor_with(raw: RawInput | None):
    app = faust.App("raw-input-test", broker=NEVER_CONTACTED, autodiscover=False, web_enabled=False)
    app.flow_control.resume()
    if raw is not None:
        assert raw.install(app.topics)
        assert not raw.install(app.topics)   # idempotent
    topic = app.topic("calls.audio", "calls.events", "calls.alerts", key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")
    return app, topic.__aiter__()   # the iterating clone a stream reads from (it subscribes to the conductor)


def test_the_input_topics_messages_go_to_the_buffer_and_other_topics_keep_faust_s_path():
    async def main():
        raw = RawInput({"calls.audio", "calls.events"}, max_batch=8, max_buffered=16)
        app, channel = conductor_with(raw)
        for tp, offset in ((AUDIO0, 5), (EVENTS3, 7), (OTHER0, 9)):
            await app.topics._build_handler(tp, {channel})(message(tp, offset))
        return [(m.topic, m.offset) for m in raw.buffer], channel.queue.qsize()

    buffered, queued = asyncio.run(main())
    assert buffered == [("calls.audio", 5), ("calls.events", 7)]
    assert queued == 1   # calls.alerts went through Faust's own handler onto the stream's queue


def test_without_it_faust_puts_the_input_on_the_stream_s_queue():
    """The control: the same hand-over with nothing installed queues an event for the stream."""
    async def main():
        app, channel = conductor_with(None)
        await app.topics._build_handler(AUDIO0, {channel})(message(AUDIO0, 5))
        return channel.queue.qsize()

    assert asyncio.run(main()) == 1


def test_a_busy_caller_gets_what_gathered_meanwhile_up_to_max_batch_and_an_idle_one_each_message_at_once():
    async def main():
        raw = RawInput({"calls.audio"}, max_batch=4, max_buffered=16)
        stop = False
        batches: list[list[int]] = []
        seen = asyncio.Event()

        async def take():
            async for batch in raw.batches(lambda: stop, POLL_S):
                batches.append([m.offset for m in batch])
                seen.set()
        taking = asyncio.ensure_future(take())
        for offset in range(6):   # all buffered before the caller runs: it is "busy"
            await raw.on_message(message(AUDIO0, offset))
        await asyncio.sleep(0.02)
        seen.clear()
        await raw.on_message(message(AUDIO0, 6))   # the caller waits idle: this one comes alone, at once
        await asyncio.wait_for(seen.wait(), 1.0)
        stop = True
        await asyncio.wait_for(taking, 1.0)
        return batches

    assert asyncio.run(main()) == [[0, 1, 2, 3], [4, 5], [6]]


def test_a_full_buffer_holds_the_hand_over_back_until_a_batch_is_taken_and_a_rebalance_clears_it():
    async def main():
        raw = RawInput({"calls.audio"}, max_batch=2, max_buffered=3)
        for offset in range(3):
            await raw.on_message(message(AUDIO0, offset))
        blocked = asyncio.ensure_future(raw.on_message(message(AUDIO0, 3)))
        await asyncio.sleep(0.02)
        waited = not blocked.done()
        batches = raw.batches(lambda: False, POLL_S)
        first = [m.offset for m in await batches.__anext__()]
        await asyncio.wait_for(blocked, 1.0)   # space again: the hand-over went on
        after_take = [m.offset for m in raw.buffer]
        await raw.on_message(message(AUDIO0, 4))   # full again
        blocked = asyncio.ensure_future(raw.on_message(message(AUDIO0, 5)))
        await asyncio.sleep(0.02)
        waited_again = not blocked.done()
        cleared = raw.clear()
        await asyncio.wait_for(blocked, 1.0)
        await batches.aclose()
        return waited, first, after_take, waited_again, cleared, [m.offset for m in raw.buffer]

    waited, first, after_take, waited_again, cleared, left = asyncio.run(main())
    assert waited and first == [0, 1] and after_take == [2, 3]
    assert waited_again and cleared == 3 and left == [5]   # what waited for space came after the rebalance's clear


@pytest.mark.parametrize("max_batch, max_buffered", [(0, 4), (5, 4)])
def test_bounds_that_cannot_work_are_refused(max_batch, max_buffered):
    with pytest.raises(ValueError, match="max_batch <= max_buffered"):
        RawInput({"calls.audio"}, max_batch, max_buffered)
