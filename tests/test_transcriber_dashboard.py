"""The transcript API of the dashboard against a real Redis holding what the transcriber's real sink writes."""

import asyncio
import time

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from dashboard_support import PASSWORD, USER, dashboard_server
from stream.redis_keys import Keys
from stream.settings import Settings
from workers.cues import CueSet, cue_alert
from workers.metrics import WorkerMetrics
from workers.transcribe.core import TranscriptBatch
from workers.transcribe.redact import redact
from workers.transcribe.sinks import TranscriptRedisSink

pytestmark = pytest.mark.integration
AUTH = (USER, PASSWORD)


def segment(call_id, leg, start, end, text, cues=()):
    return {"segment_id": f"{call_id}:{leg}:{int(start * 1000)}", "call_id": call_id, "leg": leg, "start": start, "end": end,
            "text": text, "language": "it", "confidence": 0.8, "final": True, "redactions": 0, "cues": list(cues), "at": time.time()}


def test_the_transcript_endpoint_returns_segments_per_leg_with_cues(stack):
    settings = Settings(redis_url=stack.redis_url)
    text, n = redact("Voglio parlare con un responsabile, il mio numero è 333 123 4567")
    hit = CueSet.load().match(text, "it", "customer")[0]
    batch = TranscriptBatch(segments=[segment("c1", "agent", 1.2, 3.4, "Buongiorno, come posso aiutarla?"),
                                      segment("c1", "customer", 4.0, 8.5, text, [hit.cue.name])],
                            alerts=[cue_alert(hit, "c1", "customer", 8.5, time.time(), text)],
                            call_fields={"c1": {"call_id": "c1", "status": "active", "language": "it", "segments": "2"}})

    async def write():
        r = aioredis.from_url(stack.redis_url)
        await TranscriptRedisSink(r, settings, WorkerMetrics(CollectorRegistry()), 100).write(batch)
        await r.aclose()
    asyncio.run(write())
    with dashboard_server(stack.redis_url) as url:
        assert httpx.get(url + "/api/calls/c1/transcript").status_code == 401
        t = httpx.get(url + "/api/calls/c1/transcript", auth=AUTH).json()
        assert t["status"] == "active" and t["language"] == "it"
        assert [(s["leg"], s["start"], s["end"]) for s in t["segments"]] == [("agent", 1.2, 3.4), ("customer", 4.0, 8.5)]
        cust = t["segments"][1]
        assert cust["cues"] == ["cue_escalation"] and "[number]" in cust["text"] and "4567" not in cust["text"]
        assert httpx.get(url + "/api/calls/nope/transcript", auth=AUTH).status_code == 404
        alerts = httpx.get(url + "/api/alerts", auth=AUTH).json()
        assert any(a["rule"] == "cue_escalation" and a["leg"] == "customer" for a in alerts)
    assert n == 1 and Keys().transcript("c1") == "cp:call:c1:transcript"
