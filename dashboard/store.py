"""Reads of the Redis key layout for the dashboard (one pipelined round trip per request where possible)."""

from __future__ import annotations

import json
import time

import redis.asyncio as aioredis

from stream.redis_keys import STATE_FIELD, Keys

SPARK_POINTS = 60        # per leg: the last minute of steps
MAX_CALLS = 500


def _public(h: dict) -> dict:
    """A call hash as the API shows it: numbers as numbers, JSON decoded, never the internal state."""
    out = {}
    for k, v in h.items():
        if k == STATE_FIELD:
            continue
        if k.endswith("_emotions"):
            try:
                out[k] = json.loads(v)
            except ValueError:
                out[k] = {}
            continue
        try:
            out[k] = float(v) if k not in ("call_id", "status", "agent_id", "queue", "campaign", "language", "direction", "worker") and not k.endswith("_emotion") else v
        except ValueError:
            out[k] = v
    return out


class Store:
    def __init__(self, r: aioredis.Redis, prefix: str) -> None:
        self.r = r
        self.keys = Keys(prefix)

    async def calls(self, limit: int = MAX_CALLS) -> list[dict]:
        ids = await self.r.zrevrange(self.keys.active, 0, limit - 1)
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for cid in ids:
            pipe.hgetall(self.keys.call(cid))
            pipe.xrevrange(self.keys.timeline(cid), count=2 * SPARK_POINTS)
        rows = await pipe.execute()
        out = []
        for cid, h, tl in zip(ids, rows[0::2], rows[1::2]):
            if not h:
                continue
            call = _public(h)
            spark: dict[str, list] = {"agent": [], "customer": []}
            marks = {"silence": [], "overtalk": []}
            for _, e in reversed(tl):
                leg = e.get("leg")
                if leg in spark and "sentiment" in e:
                    spark[leg].append([float(e["t"]), float(e["sentiment"])])
                if leg == "customer":
                    if e.get("silence") == "1":
                        marks["silence"].append(float(e["t"]))
                    if float(e.get("overtalk", 0)) > 0:
                        marks["overtalk"].append(float(e["t"]))
            call["spark"] = spark
            call["marks"] = marks
            out.append(call)
        out.sort(key=lambda c: -float(c.get("risk", 0)))
        return out

    async def call(self, call_id: str) -> dict | None:
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.keys.call(call_id))
        pipe.xrange(self.keys.timeline(call_id))
        pipe.get(self.keys.summary(call_id))
        h, tl, summary = await pipe.execute()
        if not h:
            return None
        call = _public(h)
        call["timeline"] = [{k: (v if k in ("leg", "emotion") else float(v)) for k, v in e.items()} for _, e in tl]
        call["summary"] = json.loads(summary) if summary else None
        return call

    async def alerts(self, count: int = 200) -> list[dict]:
        pipe = self.r.pipeline(transaction=False)
        pipe.xrevrange(self.keys.alerts, count=count)
        pipe.hgetall(self.keys.alerts_acked)
        entries, acked = await pipe.execute()
        out = []
        for stream_id, e in entries:
            a = dict(e)
            for k in ("value", "threshold", "t", "at"):
                if a.get(k):
                    a[k] = float(a[k])
            a["id"] = stream_id
            a["acked"] = json.loads(acked[a["alert_id"]]) if a.get("alert_id") in acked else None
            out.append(a)
        return out

    async def ack(self, alert_id: str, user: str) -> bool:
        entries = await self.r.xrevrange(self.keys.alerts, count=2000)
        if not any(e.get("alert_id") == alert_id for _, e in entries):
            return False
        await self.r.hset(self.keys.alerts_acked, alert_id, json.dumps({"by": user, "at": time.time()}))
        return True

    async def kpis(self) -> dict:
        names = sorted(await self.r.smembers(self.keys.kpis))
        if not names:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for n in names:
            dim, value = n.split(":", 1)
            pipe.hgetall(self.keys.kpi(dim, value))
        rows = await pipe.execute()
        out: dict = {}
        for n, row in zip(names, rows):
            dim, value = n.split(":", 1)
            if row:
                out.setdefault(dim, {})[value] = {k: float(v) for k, v in row.items()}
        return out
