"""workers.fast_dispatch: the fetcher's per-message hand-over behaves as mode's ``wait_first`` did, minus its tasks."""

from __future__ import annotations

import asyncio
import inspect
import warnings

import pytest
from faust.transport.consumer import Consumer
from mode import Service
from mode.utils.locks import Event

from workers import fast_dispatch


class Fetcher(Service):
    """A real mode Service: the same ``wait_first`` Faust's consumer inherits."""


def _pair(fast: bool) -> tuple[Fetcher, Event]:
    svc = Fetcher()
    if fast:
        assert fast_dispatch.install(svc)
    return svc, Event()


def test_faust_still_hands_messages_over_as_the_override_expects():
    """If a Faust upgrade changes this call, the override would silently do nothing (or the wrong thing)."""
    src = inspect.getsource(Consumer._drain_messages)
    assert "await self.wait_first(\n                                callback(message), self.suspend_flow.wait()\n" in src


def test_install_is_idempotent_and_leaves_other_waits_to_mode():
    async def main():
        svc, _ = _pair(True)
        assert not fast_dispatch.install(svc)
        ev = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, ev.set)
        await svc.wait(ev)          # one waitable (mode's Service.wait): mode's own path
        assert ev.is_set()
    asyncio.run(main())


@pytest.mark.parametrize("fast", [False, True])
def test_a_callback_that_finishes_at_once_is_delivered_without_a_task_and_closes_the_flow_wait(fast):
    delivered = []

    async def callback(x):
        delivered.append(x)
        return x

    async def main():
        svc, suspend = _pair(fast)
        tasks_before = len(asyncio.all_tasks())
        with warnings.catch_warnings():
            warnings.simplefilter("error")   # an un-awaited flow wait would warn
            results = [await svc.wait_first(callback(i), suspend.wait()) for i in range(3)]
        return results, tasks_before, len(asyncio.all_tasks())

    results, before, after = asyncio.run(main())
    assert delivered == [0, 1, 2]
    assert [r.results for r in results] == [[0], [1], [2]] and not any(r.stopped for r in results)
    if fast:
        assert after == before   # mode's path leaves three cancelled waits behind for the loop to finish


@pytest.mark.parametrize("fast", [False, True])
def test_a_callback_that_waits_is_resumed_until_it_finishes(fast):
    async def main():
        svc, suspend = _pair(fast)
        loop = asyncio.get_running_loop()
        gate = loop.create_future()
        seen = []

        async def callback():
            seen.append("start")
            got = await gate            # the stream's full buffer
            await asyncio.sleep(0)      # a bare yield on the way
            seen.append(got)
            return got * 2

        loop.call_later(0.01, gate.set_result, 21)
        r = await svc.wait_first(callback(), suspend.wait())
        return r, seen

    r, seen = asyncio.run(main())
    assert seen == ["start", 21] and r.results == [42]


@pytest.mark.parametrize("fast", [False, True])
def test_a_waiting_callback_is_abandoned_when_the_flow_is_suspended(fast):
    async def main():
        svc, suspend = _pair(fast)
        loop = asyncio.get_running_loop()
        state = []

        async def callback():
            try:
                await loop.create_future()   # never done
            except asyncio.CancelledError:
                state.append("cancelled")
                raise
            state.append("delivered")

        loop.call_later(0.01, suspend.set)
        r = await svc.wait_first(callback(), suspend.wait())
        await asyncio.sleep(0)
        return r, state

    r, state = asyncio.run(main())
    assert state == ["cancelled"]
    assert r.results == [True] and not r.stopped   # the flow wait won (mode's Event.wait returns True)


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("waits_first", [False, True])
def test_a_failing_callback_raises_its_error(fast, waits_first):
    async def main():
        svc, suspend = _pair(fast)

        async def callback():
            if waits_first:
                await asyncio.sleep(0.001)
            raise KeyError("no callback for this topic-partition")

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(KeyError):
                await svc.wait_first(callback(), suspend.wait())

    asyncio.run(main())
