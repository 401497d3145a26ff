"""The Kafka side alone: CPU per message to read the benchmark's backlog, by the worker with a core that only
acknowledges, and by aiokafka's own consumer as the reference.

    .venv/bin/python scripts/bench_intake.py worker --calls 200     # `callpulse worker`, its core replaced (see below)
    .venv/bin/python scripts/bench_intake.py aiokafka --calls 200   # a bare AIOKafkaConsumer, getmany + commit

Each run starts a fresh embedded broker and Redis, produces the backlog of ``--calls`` calls x 30 s in 500 ms
chunks (``stream.bench_capacity.produce_backlog``), then reads it in a process pinned to core 0 (broker and Redis
on the others) and prints the reader's CPU (all threads) per audio message, from its first record to the last.
In the ``worker`` arm the real worker runs (Faust app, agent, acknowledgements, commits, timers) with
``Pipeline.process`` replaced by one that acknowledges every record: what is left is the intake's cost. Run it
from the checkout to measure (it goes on ``PYTHONPATH``). Issue 16's stop 30 reports these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

CHUNKS_PER_CALL = 2 * 60   # two legs x 30 s of 500 ms chunks


def _reader_worker(n: int) -> None:
    import workers.pipeline as pipeline
    from stream import topics
    from workers.batch import BatchResult
    state: dict = {"n": 0, "t0": None}

    def process(self, records):
        if records and state["t0"] is None:
            state["t0"], state["c0"] = time.monotonic(), time.process_time()
        state["n"] += sum(1 for r in records if r.topic == topics.AUDIO)
        if state["n"] >= n:
            _report("worker", state["n"], time.monotonic() - state["t0"], time.process_time() - state["c0"])
            os._exit(0)
        return BatchResult(acks=[r.token for r in records if r.token is not None])
    pipeline.Pipeline.process = process
    from stream.cli import main
    sys.argv = ["callpulse", "worker", "--metrics-port", "0"]
    main()


async def _reader_aiokafka(bootstrap: str, n: int) -> None:
    from aiokafka import AIOKafkaConsumer
    from stream import topics
    consumer = AIOKafkaConsumer(topics.AUDIO, topics.EVENTS, bootstrap_servers=bootstrap, group_id="bench-intake",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=256 * 1024)   # the worker's consumer_max_fetch_size
    await consumer.start()
    got, t0, c0 = 0, None, 0.0
    while got < n:
        batch = await consumer.getmany(timeout_ms=1000, max_records=512)
        for messages in batch.values():
            if t0 is None and messages:
                t0, c0 = time.monotonic(), time.process_time()
            got += sum(1 for m in messages if m.topic == topics.AUDIO)
        if batch:
            await consumer.commit()
    _report("aiokafka", got, time.monotonic() - t0, time.process_time() - c0)
    await consumer.stop()


def _report(arm: str, n: int, wall_s: float, cpu_s: float) -> None:
    # stderr: the worker's Faust redirects stdout to its log
    print(f"INTAKE {arm}: {n} audio messages, wall {wall_s:.2f} s, CPU {cpu_s:.2f} s, "
          f"{cpu_s / n * 1e6:.1f} us of CPU per message", file=sys.stderr, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("arm", choices=["worker", "aiokafka"])
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--reader", action="store_true", help=argparse.SUPPRESS)   # the pinned child process
    p.add_argument("--bootstrap", help=argparse.SUPPRESS)
    args = p.parse_args()
    n = args.calls * CHUNKS_PER_CALL
    if args.reader:
        if args.arm == "worker":
            _reader_worker(n)
        else:
            asyncio.run(_reader_aiokafka(args.bootstrap, n))
        return
    sys.path.insert(0, os.getcwd())
    from stream.bench_capacity import produce_backlog
    from stream.bench_support import other_cores, pin
    from stream.localstack import LocalStack
    with LocalStack() as stack:
        produce_backlog(stack, args.calls, 30, 500, "intake")
        for pid in stack.server_pids():
            pin(pid, other_cores({0}))
        env = {**os.environ, "CALLPULSE_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
               "CALLPULSE_REDIS_URL": stack.redis_url, "PYTHONPATH": os.getcwd()}
        cmd = [sys.executable, __file__, args.arm, "--calls", str(args.calls), "--reader",
               "--bootstrap", stack.bootstrap_servers]
        out = subprocess.run(cmd, env=env, preexec_fn=lambda: os.sched_setaffinity(0, {0}), capture_output=True,
                             text=True, timeout=600)
        lines = [line for line in out.stderr.splitlines() if "INTAKE" in line]
        if lines:
            print(lines[-1][lines[-1].index("INTAKE"):])
        else:
            print(f"no result (exit {out.returncode}):\n{out.stderr[-2000:]}")


if __name__ == "__main__":
    main()
