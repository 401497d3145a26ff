"""Manager KPIs from the end-of-call summaries in Redis, recomputed every few seconds by the group leader.

Summaries from every worker land in Redis, so one leader computing from there sees all calls; each KPI
hash is overwritten whole, so a second leader during a rebalance only repeats the same write.
"""

from __future__ import annotations

import json
import logging
import math
import time

import redis.asyncio as aioredis

from stream.redis_keys import Keys
from stream.settings import Settings

from .kpis import compute_kpis
from .metrics import WorkerMetrics

log = logging.getLogger(__name__)
LOOKBACK_S = 86_400 + 3_600   # "today" at most, plus a margin


async def refresh_kpis(r: aioredis.Redis, keys: Keys, ttl_s: int, now: float | None = None) -> int:
    """Recompute every KPI hash; returns how many were written."""
    now = time.time() if now is None else now
    ids = await r.zrangebyscore(keys.summaries, now - LOOKBACK_S, "+inf")
    if not ids:
        return 0
    raw = await r.mget([keys.summary(i.decode() if isinstance(i, bytes) else i) for i in ids])
    summaries = [json.loads(x) for x in raw if x]
    table = compute_kpis(summaries, now)
    pipe = r.pipeline(transaction=True)
    for (dimension, value), fields in table.items():
        key = keys.kpi(dimension, value)
        pipe.delete(key)
        if fields:
            # a non-finite KPI (from a summary written before timestamps were validated) is left out, not "inf"
            pipe.hset(key, mapping={k: f"{v:.6g}" if isinstance(v, float) else str(v) for k, v in fields.items() if math.isfinite(v)})
            pipe.expire(key, ttl_s)
        pipe.sadd(keys.kpis, f"{dimension}:{value}")
    await pipe.execute()
    return len(table)


def make_kpi_job(r: aioredis.Redis, settings: Settings, metrics: WorkerMetrics):
    keys = Keys(settings.redis_prefix)

    async def kpi_job() -> None:
        try:
            await refresh_kpis(r, keys, settings.summary_ttl_s)
        except Exception as exc:  # a KPI refresh must never stop a worker; the next tick retries
            log.warning("KPI refresh failed: %r", exc)

    return kpi_job
