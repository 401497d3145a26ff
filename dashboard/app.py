"""The dashboard's ASGI app: read-only JSON API (plus acknowledge), server-sent events, and the page."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sys
import time
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream import finite_json

from .store import Store

STATIC = Path(str(resources.files("dashboard"))) / "static"
PUSH_INTERVAL_S = 0.5
# State-changing requests must carry this header: a cross-site HTML form cannot set it, and a cross-site fetch()
# that sets it needs a CORS preflight, which this app never grants.
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "callpulse"
NOT_FOUND = {404: {"description": "No such call or alert (unknown, or expired)"}}
UNAUTHORIZED = {401: {"description": "Authentication required (HTTP basic or bearer token)"}}


class DashboardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLPULSE_", extra="ignore")
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "cp"
    dashboard_user: str = ""
    dashboard_password: str = ""
    dashboard_token: str = ""
    dashboard_auth: str = "on"      # "off" only behind another authenticating proxy
    # Extra origins (scheme://host[:port], comma-separated) allowed to POST, e.g. the public URL of a proxy that
    # rewrites the Host header. The dashboard's own origin (its Host header) is always allowed.
    dashboard_allowed_origins: str = ""


def create_app(settings: DashboardSettings | None = None) -> FastAPI:
    s = settings or DashboardSettings()
    if s.dashboard_auth != "off" and not (s.dashboard_password or s.dashboard_token):
        s = s.model_copy(update={"dashboard_user": s.dashboard_user or "admin", "dashboard_password": secrets.token_urlsafe(12)})
        print(f"callpulse dashboard: no credentials configured; generated user {s.dashboard_user!r} password {s.dashboard_password!r}", file=sys.stderr)
    app = FastAPI(title="callpulse dashboard API", version="1", description="Live calls, alerts and KPIs from callpulse workers (read from Redis).",
                  openapi_url=None, docs_url=None, redoc_url=None, responses=UNAUTHORIZED)
    r = aioredis.from_url(s.redis_url, decode_responses=True)
    store = Store(r, s.redis_prefix)
    basic, bearer = HTTPBasic(auto_error=False), HTTPBearer(auto_error=False)

    async def user(b: HTTPBasicCredentials | None = Depends(basic), t: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        if s.dashboard_auth == "off":
            return "anonymous"
        if t is not None and s.dashboard_token and secrets.compare_digest(t.credentials, s.dashboard_token):
            return "token"
        if b is not None and s.dashboard_password and secrets.compare_digest(b.username, s.dashboard_user) \
                and secrets.compare_digest(b.password, s.dashboard_password):
            return b.username
        raise HTTPException(401, "authentication required", headers={"WWW-Authenticate": 'Basic realm="callpulse"'})

    allowed_origins = {o.strip().rstrip("/") for o in s.dashboard_allowed_origins.split(",") if o.strip()}

    def same_origin_request(request: Request) -> None:
        """CSRF defence for POSTs: the custom header (so no simple cross-site request qualifies) and, when the
        browser sends one, an Origin that is this dashboard's own (or an allowed one)."""
        if request.headers.get(CSRF_HEADER) != CSRF_VALUE:
            raise HTTPException(403, f"state-changing requests must send the header {CSRF_HEADER}: {CSRF_VALUE}")
        origin = request.headers.get("origin")
        if origin is None:
            return   # not a browser (curl, scripts): the header above and the credentials are the proof
        if origin.rstrip("/") in allowed_origins or urlsplit(origin).netloc == request.headers.get("host"):
            return
        raise HTTPException(403, f"cross-origin request from {origin!r} refused")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(_: str = Depends(user)) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def docs(_: str = Depends(user)) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(_: str = Depends(user)) -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=app.title)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        await r.ping()
        return {"ok": True}

    @app.get("/api/calls", summary="Active calls, highest risk first, with per-leg sentiment sparklines")
    async def calls(limit: int = 500, _: str = Depends(user)) -> list[dict]:
        return await store.calls(min(max(limit, 1), 2000))

    @app.get("/api/calls/{call_id}", summary="One call: live metrics, full timeline, end-of-call summary", responses=NOT_FOUND)
    async def call(call_id: str, _: str = Depends(user)) -> dict:
        c = await store.call(call_id)
        if c is None:
            raise HTTPException(404, f"no call {call_id!r} (unknown, or expired)")
        return c

    @app.get("/api/alerts", summary="Recent alert events, newest first, with acknowledgement")
    async def alerts(count: int = 200, _: str = Depends(user)) -> list[dict]:
        return await store.alerts(min(max(count, 1), 2000))

    @app.post("/api/alerts/{alert_id}/ack", summary=f"Acknowledge an alert (send the header {CSRF_HEADER}: {CSRF_VALUE})",
              responses={**NOT_FOUND, 403: {"description": f"missing {CSRF_HEADER} header, or a cross-origin request"}})
    async def ack(alert_id: str, request: Request, who: str = Depends(user)) -> dict:
        same_origin_request(request)
        if not await store.ack(alert_id, who):
            raise HTTPException(404, f"no alert {alert_id!r}")
        return {"alert_id": alert_id, "acked_by": who}

    @app.get("/api/kpis", summary="Manager KPIs per queue, campaign, agent and overall, over 15m, 1h and today")
    async def kpis(_: str = Depends(user)) -> dict:
        return await store.kpis()

    cache = {"at": 0.0, "body": "", "digest": ""}
    cache_lock = asyncio.Lock()

    async def snapshot() -> tuple[str, str]:
        """One Redis read per PUSH_INTERVAL_S however many supervisors are connected."""
        async with cache_lock:
            now = time.monotonic()
            if now - cache["at"] >= PUSH_INTERVAL_S:
                snap = {"calls": await store.calls(), "alerts": await store.alerts(50), "kpis": await store.kpis()}
                body = finite_json.dumps(snap, separators=(",", ":"))
                cache.update(at=now, body=body, digest=hashlib.blake2b(body.encode(), digest_size=8).hexdigest())
            return cache["body"], cache["digest"]

    @app.get("/api/stream", summary="Server-sent events: a 'snapshot' event whenever calls, alerts or KPIs change",
             response_class=StreamingResponse,
             responses={200: {"description": "An endless text/event-stream: `event: snapshot` with `data:` one JSON object "
                                             "{calls, alerts, kpis} whenever it changed, else a `: keep-alive` comment, "
                                             f"every {PUSH_INTERVAL_S:g} s",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}}})
    async def stream(request: Request, _: str = Depends(user)) -> StreamingResponse:
        async def events():
            last = ""
            while not await request.is_disconnected():
                body, digest = await snapshot()
                if digest != last:
                    last = digest
                    yield f"event: snapshot\ndata: {body}\n\n"
                else:
                    yield ": keep-alive\n\n"
                await asyncio.sleep(PUSH_INTERVAL_S)
        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    async def index(_: str = Depends(user)) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
