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
CSRF = {"X-Requested-With": "callpulse"}


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
    r = httpx.post(api + f"/api/alerts/{aid}/ack", auth=AUTH, headers=CSRF)
    assert r.status_code == 200 and r.json()["acked_by"] == USER
    again = {a["alert_id"]: a for a in httpx.get(api + "/api/alerts", auth=AUTH).json()}
    assert again[aid]["acked"]["by"] == USER
    assert httpx.post(api + "/api/alerts/none/ack", auth=AUTH, headers=CSRF).status_code == 404


def test_kpis(api):
    k = httpx.get(api + "/api/kpis", auth=AUTH).json()
    assert k["all"]["all"]["15m.calls"] == 1.0
    assert k["queue"]["billing"]["1h.aht_s"] == 20.0


def test_openapi_schema_lists_the_endpoints(api):
    spec = httpx.get(api + "/openapi.json", auth=AUTH).json()
    paths = spec["paths"]
    assert {"/api/calls", "/api/calls/{call_id}", "/api/alerts", "/api/alerts/{alert_id}/ack", "/api/kpis", "/api/stream"} <= set(paths)
    # issue 17: the stream is described as what it is, and the 404s are listed
    stream = paths["/api/stream"]["get"]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]
    assert "404" in paths["/api/calls/{call_id}"]["get"]["responses"]
    assert {"403", "404"} <= set(paths["/api/alerts/{alert_id}/ack"]["post"]["responses"])


def test_api_description_and_docs_need_authentication(api):
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert httpx.get(api + path).status_code == 401, path
        assert httpx.get(api + path, auth=AUTH).status_code == 200, path


def test_acknowledge_refuses_simple_and_cross_origin_requests(api):
    aid = next(a for a in httpx.get(api + "/api/alerts", auth=AUTH).json() if a["state"] == "open")["alert_id"]
    url = api + f"/api/alerts/{aid}/ack"
    form = httpx.post(url, auth=AUTH, data={"x": "1"}, headers={"Origin": "http://evil.example"})   # what a form sends
    assert form.status_code == 403 and "X-Requested-With" in form.json()["detail"]
    assert httpx.post(url, auth=AUTH).status_code == 403                                              # no header at all
    cross = httpx.post(url, auth=AUTH, headers={"X-Requested-With": "callpulse", "Origin": "http://evil.example"})
    assert cross.status_code == 403 and "cross-origin" in cross.json()["detail"]
    assert all(a["acked"] is None for a in httpx.get(api + "/api/alerts", auth=AUTH).json())
    same = httpx.post(url, auth=AUTH, headers={"X-Requested-With": "callpulse", "Origin": api})
    assert same.status_code == 200 and same.json()["acked_by"] == USER


def test_call_ids_that_look_like_other_keys_are_404_not_500(api):
    for cid in ("live-1:timeline", "ended-1:timeline", "a:b", "%3A"):
        r = httpx.get(api + "/api/calls/" + cid, auth=AUTH)
        assert r.status_code == 404, (cid, r.status_code)


def test_non_finite_numbers_never_reach_the_json_or_the_stream(api, stack):
    """A start event with ts -Infinity once gave duration inf, aht_s inf, and Infinity in the SSE snapshot, which
    JSON.parse rejects: the wall stayed at 'connecting…' for every supervisor."""
    import redis as sync_redis
    r = sync_redis.Redis.from_url(stack.redis_url, decode_responses=True)
    keys = Keys()
    r.hset(keys.call("live-1"), mapping={"duration_s": "inf", "customer_sentiment": "nan"})
    r.hset(keys.kpi("queue", "billing"), mapping={"15m.aht_s": "inf", "1h.aht_s": "-inf"})
    r.set(keys.summary("ended-1"), json.dumps({"call_id": "ended-1", "duration_s": float("inf"), "ended_at": 1.0}))
    r.close()

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-finite {c} in JSON"))

    for path in ("/api/calls", "/api/calls/live-1", "/api/calls/ended-1", "/api/kpis", "/api/alerts"):
        resp = httpx.get(api + path, auth=AUTH)
        assert resp.status_code == 200, (path, resp.status_code)
        strict(resp.text)
    assert strict(httpx.get(api + "/api/calls/ended-1", auth=AUTH).text)["summary"]["duration_s"] is None
    assert "15m.aht_s" not in strict(httpx.get(api + "/api/kpis", auth=AUTH).text)["queue"]["billing"]
    time.sleep(0.6)   # past the snapshot cache
    with httpx.stream("GET", api + "/api/stream", auth=AUTH, timeout=10) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                snap = strict(line[6:])
                break
    assert snap["calls"][0]["duration_s"] is None


def test_the_stream_sends_a_snapshot(api):
    with httpx.stream("GET", api + "/api/stream", auth=AUTH, timeout=10) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                snap = json.loads(line[6:])
                break
    assert [c["call_id"] for c in snap["calls"]] == ["live-1"] and snap["alerts"] and snap["kpis"]
