"""Serving the dashboard in a thread on a free port, and driving headless Chromium with Playwright."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager

import uvicorn

from dashboard.app import DashboardSettings, create_app
from stream.localstack import free_port

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
USER, PASSWORD = "supervisor", "test-password"


@contextmanager
def dashboard_server(redis_url: str, prefix: str = "cp"):
    port = free_port()
    app = create_app(DashboardSettings(redis_url=redis_url, redis_prefix=prefix, dashboard_user=USER, dashboard_password=PASSWORD))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("dashboard did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def browser_page(base_url: str):
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix="callpulse-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS,
                                                       http_credentials={"username": USER, "password": PASSWORD},
                                                       viewport={"width": 1440, "height": 900})
        try:
            page = context.new_page()
            page.goto(base_url + "/")
            yield page
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def screenshots_dir() -> str:
    d = os.environ.get("CALLPULSE_SCREENSHOTS", "artifacts/screenshots")
    os.makedirs(d, exist_ok=True)
    return d
