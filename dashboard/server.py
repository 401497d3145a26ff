"""Serve the dashboard with uvicorn."""

from __future__ import annotations

import uvicorn

from .app import DashboardSettings, create_app


def serve_forever(host: str = "127.0.0.1", port: int = 8080, redis_url: str | None = None, prefix: str | None = None) -> None:
    overrides = {k: v for k, v in (("redis_url", redis_url), ("redis_prefix", prefix)) if v}
    app = create_app(DashboardSettings(**overrides))
    uvicorn.run(app, host=host, port=port, log_level="warning")
