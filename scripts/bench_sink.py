"""The worker's Redis writes alone: CPU per call hash written, through ``RedisSink`` into a real Valkey.

    .venv/bin/python scripts/bench_sink.py --calls 200 --seconds 30 --batch 512   # a drain's batches
    .venv/bin/python scripts/bench_sink.py --calls 200 --seconds 30 --batch 24    # real time at ~400 calls

The pure core (``scripts/bench_core.py``'s backlog, fixed scores instead of the models) turns the backlog into
batch results first; then only their writes are timed, with the worker's client set-up (one-pass packing), and
this process's CPU per call hash written is printed (each written call: HSET of the hash and its timeline's XADD, and
an EXPIRE of each when due), with Valkey's own CPU over the same writes. Valkey runs in its own process, started
here on a free 127.0.0.1 port.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

sys.path.insert(0, os.getcwd())   # measure the tree this is run from
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import BATCH, backlog, core_pipeline  # noqa: E402
from stream.bench_support import cpu_seconds  # noqa: E402
from stream.localstack import LocalStack  # noqa: E402
from stream.settings import Settings  # noqa: E402
from workers.inference import Models  # noqa: E402
from workers.metrics import WorkerMetrics  # noqa: E402
from workers.redis_pack import one_pass_packing  # noqa: E402
from workers.sinks import RedisSink  # noqa: E402


async def write_all(redis_url: str, settings: Settings, results: list) -> float:
    client = one_pass_packing(aioredis.from_url(redis_url))
    sink = RedisSink(client, settings, WorkerMetrics(CollectorRegistry()))
    await client.ping()
    c0 = time.process_time()
    for result in results:
        await sink.write(result)
    cpu = time.process_time() - c0
    await client.aclose()
    return cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--batch", type=int, default=BATCH)
    args = p.parse_args()
    settings = Settings()
    core = core_pipeline(settings, Models(None, threads=1), fixed_scores=True)
    recs = backlog(args.calls, args.seconds, 500)
    results = [core.process(recs[i:i + args.batch]) for i in range(0, len(recs), args.batch)]
    written = sum(len(r.call_fields) for r in results)
    with LocalStack() as stack:   # its broker idles; only Valkey is used
        redis_pid = stack.redis_proc.pid
        redis_cpu0 = cpu_seconds(redis_pid)
        cpu = asyncio.run(write_all(stack.redis_url, settings, results))
        redis_cpu = cpu_seconds(redis_pid) - redis_cpu0
    print(f"{os.getcwd()}: {cpu * 1e6 / written:.1f} us of CPU per call hash written ({written} in {len(results)} "
          f"writes of batches of {args.batch}; {cpu * 1e6 / (len(recs) - args.calls):.1f} us per audio message); "
          f"Valkey {redis_cpu * 1e6 / written:.1f} us per call hash written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
