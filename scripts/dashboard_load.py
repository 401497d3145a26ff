"""Measure the dashboard API with N live calls in a real Valkey (127.0.0.1 only, bounded requests).

    python scripts/dashboard_load.py --calls 500 --requests 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dashboard_support import PASSWORD, USER, dashboard_server  # noqa: E402
from stream.localstack import LocalStack  # noqa: E402
from stream.redis_keys import Keys  # noqa: E402


def seed(r: redis.Redis, n: int, steps: int = 120) -> None:
    k = Keys()
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        cid = f"load-{i}"
        pipe.hset(k.call(cid), mapping={"call_id": cid, "status": "active", "queue": f"q{i % 5}", "agent_id": f"a{i % 40}",
                                        "duration_s": steps, "risk": i % 100, "customer_sentiment_avg": -0.2, "customer_emotion": "neutral",
                                        "customer_emotions": json.dumps({"neutral": 0.7, "angry": 0.3}), "_state": "x" * 3000,
                                        "customer_spark": json.dumps([[t, 0.1] for t in range(steps - 60, steps)]),
                                        "agent_spark": json.dumps([[t, 0.2] for t in range(steps - 60, steps)]),
                                        "marks": json.dumps({"silence": [steps - 3], "overtalk": []})})
        for t in range(1, steps + 1):
            for leg in ("agent", "customer"):
                pipe.xadd(k.timeline(cid), {"t": t, "leg": leg, "speech": 0.5, "silence": 0, "overtalk": 0, "sentiment": 0.1})
        pipe.zadd(k.active, {cid: i % 100})
        if i % 50 == 49:
            pipe.execute()
    pipe.execute()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--requests", type=int, default=30)
    args = p.parse_args()
    with LocalStack() as stack:
        seed(redis.Redis.from_url(stack.redis_url), args.calls)
        with dashboard_server(stack.redis_url) as url:
            times = []
            size = 0
            for _ in range(args.requests):
                t0 = time.perf_counter()
                resp = httpx.get(url + "/api/calls", auth=(USER, PASSWORD), timeout=30)
                times.append(time.perf_counter() - t0)
                size = len(resp.content)
                assert len(resp.json()) == args.calls
            times.sort()
            print(json.dumps({"calls": args.calls, "requests": args.requests, "p50_ms": round(statistics.median(times) * 1000, 1),
                              "max_ms": round(times[-1] * 1000, 1), "response_kB": round(size / 1024, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
