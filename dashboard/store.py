"""Reads of the Redis key layout for the dashboard (one pipelined round trip per request where possible)."""

from __future__ import annotations

import json
import math
import time

import redis.asyncio as aioredis

from stream.finite_json import finite
from stream.redis_keys import CALL_FIELDS, LEG_FIELDS, LEGS, STATE_FIELD, Keys

MAX_CALLS = 500
JSON_FIELDS = ("marks", "alert_log", "evidence")   # hash fields that hold JSON (alert_log, evidence: the drill-down's "why")
WALL_FIELDS = list(CALL_FIELDS) + [f"{leg}_{f}" for leg in LEGS for f in LEG_FIELDS]


def _public(h: dict) -> dict:
    """A call hash as the API shows it: numbers as numbers, JSON decoded, never the internal state."""
    out = {}
    for k, v in h.items():
        if k == STATE_FIELD:
            continue
        if k.endswith("_emotions") or k.endswith("_spark") or k in JSON_FIELDS:
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
        """One ZREVRANGE and one HMGET per call of the public fields only (the workers keep the sparklines in
        the hash, so no timeline stream is read here)."""
        ids = await self.r.zrevrange(self.keys.active, 0, limit - 1)
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for cid in ids:
            pipe.hmget(self.keys.call(cid), WALL_FIELDS)
        rows = await pipe.execute()
        out = []
        for row in rows:
            h = {k: v for k, v in zip(WALL_FIELDS, row) if v is not None}
            if not h:
                continue
            call = _public({k: v for k, v in h.items() if not k.endswith("spark") and k != "marks"})
            call["spark"] = {leg: json.loads(h.get(f"{leg}_spark") or "[]") for leg in LEGS}
            call["marks"] = json.loads(h.get("marks") or '{"silence": [], "overtalk": []}')
            out.append(call)
        out.sort(key=lambda c: -float(c.get("risk", 0)))
        return finite(out)

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
        return finite(call)

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
            try:
                a["evidence"] = json.loads(a["evidence"]) if a.get("evidence") else None
            except ValueError:
                a["evidence"] = None
            a["id"] = stream_id
            a["acked"] = json.loads(acked[a["alert_id"]]) if a.get("alert_id") in acked else None
            out.append(a)
        return finite(out)

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
                out.setdefault(dim, {})[value] = {k: float(v) for k, v in row.items() if math.isfinite(float(v))}
        return out

    async def transcript(self, call_id: str) -> dict | None:
        """The call's transcript segments (redacted by the transcriber), oldest first, and where its timeline ends
        (the drill-down draws both on one time axis). None when neither exists."""
        pipe = self.r.pipeline(transaction=False)
        pipe.xrange(self.keys.transcript(call_id))
        pipe.hgetall(self.keys.transcriber(call_id))
        pipe.xrevrange(self.keys.timeline(call_id), count=1)
        entries, tx, last = await pipe.execute()
        if not entries and not tx:
            return None
        segments = []
        for _, e in entries:
            seg = {k: v for k, v in e.items() if k != "cues"}
            for k in ("start", "end", "confidence", "at"):
                if k in seg:
                    seg[k] = float(seg[k])
            seg["final"] = seg.get("final") == "True"
            seg["redactions"] = int(seg.get("redactions") or 0)
            seg["cues"] = json.loads(e.get("cues") or "[]")
            segments.append(seg)
        segments.sort(key=lambda s: (s["start"], s["leg"]))
        return {"call_id": call_id, "status": tx.get("status"), "language": tx.get("language"), "segments": segments,
                "timeline_end": float(last[0][1]["t"]) if last else None}
