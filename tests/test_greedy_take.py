"""workers.greedy_take on a real Faust stream (an in-memory channel of the app; no broker is contacted).

Each test's ``within`` is far longer than the test's own deadline, so a batcher that waited for its timer
(Faust's ``noack_take``) fails them: a batch has to go as soon as nothing more is queued.
"""

from __future__ import annotations

import asyncio

import faust
import pytest

from workers.greedy_take import greedy_take

LONG_WITHIN_S = 60.0
NEVER_CONTACTED = "kafka://127.0.0.1:9"   # a channel's stream needs a transport's consumer object, never connected
DEADLINE_S = 10.0


async def batches_of(values_before: list, max_: int, on_batch=None, want: int = 0) -> list[list]:
    """Put ``values_before`` on a channel, iterate ``greedy_take`` over its stream, return the values per batch
    until ``want`` values were seen. ``on_batch(channel, batch_no)`` runs while a batch is being processed."""
    app = faust.App("greedy-take-test", broker=NEVER_CONTACTED, autodiscover=False, web_enabled=False)
    app.flow_control.resume()
    channel = app.channel(maxsize=1000)
    stream = channel.stream()   # subscribes: a channel delivers only to streams that exist when it is sent to
    for v in values_before:
        await channel.send(value=v)
    seen, out = 0, []
    async with stream:
        async def consume():
            nonlocal seen
            async for events in greedy_take(stream, max_, LONG_WITHIN_S):
                out.append([e.value for e in events])
                seen += len(events)
                if on_batch is not None:
                    await on_batch(channel, len(out))
                if seen >= want:
                    break
        await asyncio.wait_for(consume(), DEADLINE_S)
    return out


def run(coro):
    return asyncio.run(coro)


def test_queued_events_go_at_once_in_batches_of_at_most_max():
    out = run(batches_of(list(range(10)), max_=4, want=10))
    assert out == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_single_event_goes_without_waiting_for_the_timer():
    assert run(batches_of([7], max_=512, want=1)) == [[7]]


def test_events_that_arrive_while_a_batch_is_processed_form_the_next_batch():
    async def during(channel, batch_no):
        if batch_no == 1:
            for v in range(100, 105):
                await channel.send(value=v)
            await asyncio.sleep(0.05)   # the caller is busy; nothing may join the batch in hand

    out = run(batches_of([1], max_=512, on_batch=during, want=6))
    assert out == [[1], [100, 101, 102, 103, 104]]


def test_events_are_not_acknowledged_and_acks_are_restored_after():
    async def main():
        app = faust.App("greedy-take-acks", broker=NEVER_CONTACTED, autodiscover=False, web_enabled=False)
        app.flow_control.resume()
        channel = app.channel(maxsize=10)
        stream = channel.stream()
        await channel.send(value=1)
        assert stream.enable_acks
        async with stream:
            async def consume():
                async for events in greedy_take(stream, 8, LONG_WITHIN_S):
                    assert not stream.enable_acks
                    return events
            events = await asyncio.wait_for(consume(), DEADLINE_S)
        return stream, events

    stream, events = run(main())
    assert [e.value for e in events] == [1]
    assert stream.enable_acks


@pytest.mark.parametrize("max_, within", [(0, 1.0), (4, 0.0)])
def test_the_contract_is_stated(max_, within):
    async def main():
        async for _ in greedy_take(object(), max_, within):
            pass
    with pytest.raises(ValueError, match="max_ >= 1 and within > 0"):
        run(main())
