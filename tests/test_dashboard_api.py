"""The dashboard API against a real Redis (Valkey) holding what the real pipeline writes."""

import asyncio
import json
import os
import time

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from dashboard_support import PASSWORD, USER, dashboard_server
from stream.settings import Settings
from test_pipeline import call_records, run
from workers.inference import Models
from workers.kpi_job import refresh_kpis
from workers.metrics import WorkerMetrics
from workers.pipeline import Pipeline
from workers.rules import RuleEngine, RuleSet
from workers.sinks import RedisSink
from stream.redis_keys import Keys

pytestmark = pytest.mark.integration
AUTH = (USER, PASSWORD)


def seed(redis_url: str):
    """Two calls through the real core and the real Redis sink: one live, one ended; KPIs computed from them."""
    settings = Settings(redis_url=redis_url)
    models = Models(os.environ.get("CALLPULSE_MODEL_DIR") or None)
    rules = RuleSet.from_yaml("rules:\n  - {name: loud, severity: warning, leg: none, metric: overtalk_step_s, op: '>', threshold: 0.1}\n")
    m = WorkerMetrics(CollectorRegistry())
    p = Pipeline(settings, models, models.emotion.labels, m, RuleEngine(rules))
    t0 = time.time() - 60
    results = run(p, call_records("ended-1", t0=t0)) + run(p, call_records("live-1", end=False, t0=t0))

    async def write():
        r = aioredis.from_url(redis_url)
        sink = RedisSink(r, settings, m)
        for res in results:
            await sink.write(res)
        await refresh_kpis(r, Keys(), 3600)
        await r.aclose()
    asyncio.run(write())


@pytest.fixture
def api(stack):
    seed(stack.redis_url)
    with dashboard_server(stack.redis_url) as url:
        yield url


def test_authentication_is_required(api):
    for path in ("/api/calls", "/api/alerts", "/api/kpis", "/api/calls/live-1", "/"):
        assert httpx.get(api + path).status_code == 401
    assert httpx.get(api + "/api/calls", auth=(USER, "wrong")).status_code == 401
    assert httpx.get(api + "/healthz").status_code == 200


def test_calls_and_one_call(api):
    calls = httpx.get(api + "/api/calls", auth=AUTH).json()
    assert [c["call_id"] for c in calls] == ["live-1"]
    c = calls[0]
    assert "_state" not in c and c["status"] == "active" and c["queue"] == "billing"
    assert len(c["spark"]["customer"]) > 3 and all(-1 <= v <= 1 for _, v in c["spark"]["customer"])
    one = httpx.get(api + "/api/calls/ended-1", auth=AUTH).json()
    assert one["status"] == "ended" and one["summary"]["call_id"] == "ended-1"
    assert len(one["timeline"]) == 40 and "_state" not in json.dumps(one)
    assert httpx.get(api + "/api/calls/nope", auth=AUTH).status_code == 404


def test_alerts_and_acknowledge(api):
    alerts = httpx.get(api + "/api/alerts", auth=AUTH).json()
    opened = [a for a in alerts if a["state"] == "open"]
    assert opened and all(a["acked"] is None for a in alerts)
    aid = opened[0]["alert_id"]
    r = httpx.post(api + f"/api/alerts/{aid}/ack", auth=AUTH)
    assert r.status_code == 200 and r.json()["acked_by"] == USER
    again = {a["alert_id"]: a for a in httpx.get(api + "/api/alerts", auth=AUTH).json()}
    assert again[aid]["acked"]["by"] == USER
    assert httpx.post(api + "/api/alerts/none/ack", auth=AUTH).status_code == 404


def test_kpis(api):
    k = httpx.get(api + "/api/kpis", auth=AUTH).json()
    assert k["all"]["all"]["15m.calls"] == 1.0
    assert k["queue"]["billing"]["1h.aht_s"] == 20.0


def test_openapi_schema_lists_the_endpoints(api):
    paths = httpx.get(api + "/openapi.json").json()["paths"]
    assert {"/api/calls", "/api/calls/{call_id}", "/api/alerts", "/api/alerts/{alert_id}/ack", "/api/kpis", "/api/stream"} <= set(paths)


def test_the_stream_sends_a_snapshot(api):
    with httpx.stream("GET", api + "/api/stream", auth=AUTH, timeout=10) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                snap = json.loads(line[6:])
                break
    assert [c["call_id"] for c in snap["calls"]] == ["live-1"] and snap["alerts"] and snap["kpis"]
