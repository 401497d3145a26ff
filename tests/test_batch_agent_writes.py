"""workers.batch_agent: a batch's writes overlap the core's work on the next batch, and never anything else.

The agent is driven here without a broker (its input, core and sinks are small recording stand-ins), so the
order of core runs, writes, acknowledgements, Redis reads and rebalances can be observed exactly. The real
stack's pipeline, kill and rebalance tests (test_pipeline, test_faults, test_integration) cover the same agent
end to end.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from stream.settings import Settings
from workers.batch import BatchResult, Record
from workers.batch_agent import BatchAgent
from workers.health import Liveness
from workers.metrics import WorkerMetrics


class Consumer:
    """Faust's consumer as the agent uses it: acknowledgements are logged (fast_dispatch leaves an object without
    ``wait_first`` alone)."""

    def __init__(self, log: list) -> None:
        self.log = log

    def track_message(self, message) -> None:
        pass

    def ack(self, message) -> bool:
        self.log.append(("ack", message.offset))
        return True


class App:
    """What the agent asks of a Faust app when it is built and while it consumes."""
    consumer_generation_id = 1
    conf = SimpleNamespace(stream_buffer_maxsize=64)

    def __init__(self, log: list) -> None:
        self.on_partitions_revoked = SimpleNamespace(connect=lambda fn: None)
        self.topics = SimpleNamespace(_build_handler=lambda tp, channels: None)   # the conductor raw_input hooks
        self.consumer = Consumer(log)

    def agent(self, topic, name):
        return lambda fn: fn

    def timer(self, interval):
        return lambda fn: fn


def event(offset: int, call_id: str = "c1"):
    return SimpleNamespace(topic="calls.audio", key=call_id.encode(), value=b"x", partition=0,
                           timestamp=0.0, offset=offset, generation_id=1)


class Core:
    """Records each batch it processes; acknowledges every record; knows a call once it has seen it."""

    def __init__(self, log: list) -> None:
        self.log, self.known = log, set()

    @staticmethod
    def call_id_of(record: Record) -> str | None:
        return record.key.decode()

    def needs_lookup(self, call_id: str) -> bool:
        return call_id not in self.known

    def restore(self, call_id: str, fields: dict) -> None:
        self.known.add(call_id)

    def process(self, records: list[Record]) -> BatchResult:
        offsets = tuple(r.token.offset for r in records)
        self.log.append(("core", offsets))
        result = BatchResult(call_fields={"c": {"o": str(offsets)}})
        for r in records:
            self.known.add(self.call_id_of(r))
            result.ack(r)
        return result

    def expire(self) -> BatchResult:
        self.log.append(("expire",))
        return BatchResult()

    def drop_partitions(self, partitions: set[int]) -> int:
        self.log.append(("drop", tuple(sorted(partitions))))
        return 0

    def mark_caught_up(self, keys) -> None:
        pass


class RedisSink:
    """A Redis write that finishes only when the test opens its gate."""

    def __init__(self, log: list) -> None:
        self.log, self.gate = log, asyncio.Event()
        self.gate.set()

    async def write(self, result: BatchResult) -> None:
        self.log.append(("write start", result.call_fields["c"]["o"] if result.call_fields else "-"))
        await self.gate.wait()
        self.log.append(("write done", result.call_fields["c"]["o"] if result.call_fields else "-"))

    async def load_calls(self, call_ids):
        self.log.append(("load", tuple(call_ids)))
        return {cid: {} for cid in call_ids}


class KafkaSink:
    async def write(self, result: BatchResult) -> None:
        pass


class Stream:
    """Hands the test's batches to the agent's input as Faust's fetcher would (``stream.queue.put(batch)``), one
    batch at a time: the next goes in once the agent took the last. ``put(None)`` stops the agent."""

    def __init__(self, agent: BatchAgent) -> None:
        self.agent, self.queue, self.should_stop = agent, self, False

    async def put(self, batch) -> None:
        if batch is None:
            self.should_stop = True
            return
        await until(lambda: not self.agent.input.buffer)
        for message in batch:
            await self.agent.input.on_message(message)


def make_agent():
    log: list = []
    # the input's own batching has its tests (test_raw_input.py); here each batch is what the test hands over
    settings = Settings(batch_max_messages=16, batch_within_s=0.01)
    metrics = WorkerMetrics(CollectorRegistry())
    agent = BatchAgent(App(log), None, settings, Core(log), RedisSink(log), KafkaSink(), metrics, Liveness(60.0),
                       agent_name="test", thread_name="test-core")
    return agent, log


async def until(predicate, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_the_core_works_on_the_next_batch_while_the_last_one_is_written_and_acks_follow_each_write():
    async def main():
        agent, log = make_agent()
        stream = Stream(agent)
        consuming = asyncio.ensure_future(agent.consume(stream))
        agent.redis_sink.gate.clear()                 # batch 1's Redis write hangs
        await stream.queue.put([event(1), event(2)])
        await until(lambda: ("write start", "(1, 2)") in log)
        await stream.queue.put([event(3)])
        await until(lambda: ("core", (3,)) in log)    # the core ran batch 2 while batch 1 was still being written
        assert ("ack", 1) not in log and ("write start", "(3,)") not in log   # nothing acked or overtaken early
        agent.redis_sink.gate.set()
        await stream.queue.put(None)
        await consuming                               # the stopping agent finishes the last batch's writes
        return log

    log = asyncio.run(main())
    writes = [e for e in log if e[0] in ("write start", "write done", "ack")]
    assert writes == [("write start", "(1, 2)"), ("write done", "(1, 2)"), ("ack", 1), ("ack", 2),
                      ("write start", "(3,)"), ("write done", "(3,)"), ("ack", 3)]


def test_a_redis_read_of_call_state_waits_for_the_batch_in_flight():
    """The batch being written may hold a call's last state or its end; reading Redis first would restore it stale."""
    async def main():
        agent, log = make_agent()
        stream = Stream(agent)
        consuming = asyncio.ensure_future(agent.consume(stream))
        await stream.queue.put([event(1, "c1")])
        await until(lambda: ("ack", 1) in log)
        agent.redis_sink.gate.clear()
        await stream.queue.put([event(2, "c1")])
        await until(lambda: ("write start", "(2,)") in log)
        await stream.queue.put([event(3, "c2")])      # a call the core does not know: it must be looked up
        await asyncio.sleep(0.05)
        assert ("load", ("c2",)) not in log and ("core", (3,)) not in log   # the lookup waits, and so does the core
        agent.redis_sink.gate.set()
        await stream.queue.put(None)
        await consuming
        return log

    log = asyncio.run(main())
    assert log.index(("write done", "(2,)")) < log.index(("ack", 2)) < log.index(("load", ("c2",))) < log.index(("core", (3,)))


@pytest.mark.parametrize("interrupt", ["rebalance", "tick"])
def test_a_rebalance_or_the_timer_waits_until_the_batch_in_flight_is_acknowledged(interrupt):
    """A revoked partition's offsets are committed right after the handler: its processed messages must be acked."""
    async def main():
        agent, log = make_agent()
        stream = Stream(agent)
        consuming = asyncio.ensure_future(agent.consume(stream))
        agent.redis_sink.gate.clear()
        await stream.queue.put([event(1)])
        await until(lambda: ("write start", "(1,)") in log)
        if interrupt == "rebalance":
            handler = asyncio.ensure_future(agent.on_revoked(None, [SimpleNamespace(topic="calls.audio", partition=0)]))
            marker = ("drop", (0,))
        else:
            handler = asyncio.ensure_future(agent.tick())
            marker = ("expire",)
        await asyncio.sleep(0.05)
        assert marker not in log
        agent.redis_sink.gate.set()
        await handler
        await stream.queue.put(None)
        await consuming
        return log, marker

    log, marker = asyncio.run(main())
    assert log.index(("ack", 1)) < log.index(marker)


def test_an_error_in_a_batchs_writes_stops_the_agent_as_before():
    class Broken(RedisSink):
        async def write(self, result):
            raise RuntimeError("write failed")

    async def main():
        agent, log = make_agent()
        agent.redis_sink = Broken(log)
        stream = Stream(agent)
        consuming = asyncio.ensure_future(agent.consume(stream))
        await stream.queue.put([event(1)])
        await stream.queue.put([event(2)])
        with pytest.raises(RuntimeError, match="write failed"):
            await asyncio.wait_for(consuming, 5.0)
        return log

    log = asyncio.run(main())
    assert not [e for e in log if e[0] == "ack"]
