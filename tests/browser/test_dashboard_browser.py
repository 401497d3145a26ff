"""Headless Chromium on the dashboard while a sample call is replayed through the real broker, worker and Redis."""

import json
import os
import re
import threading

import pytest
from kafka import KafkaConsumer

from dashboard_support import browser_page, chromium_path, dashboard_server, screenshots_dir
from stream.producer import CallProducer
from stream.replay import load_sample_calls, replay
from support import WorkerProcess

pytestmark = [pytest.mark.browser, pytest.mark.integration]

if chromium_path() is None:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing in CI: scripts/test.sh installs Debian's chromium package")
    pytest.skip("Debian chromium not installed", allow_module_level=True)


def test_live_call_scores_and_an_alert_appear_update_and_can_be_acknowledged(stack, worker_env):
    call = next(c for c in load_sample_calls("-browser") if c.call_id.startswith("demo-en-silence"))
    worker = WorkerProcess(worker_env).start()
    shots = screenshots_dir()
    done = threading.Event()
    try:
        with dashboard_server(stack.redis_url) as url, browser_page(url) as page:
            def feed():
                with CallProducer(stack.bootstrap_servers) as p:
                    replay(p, [call], speed=4.0, chunk_ms=200, stop=done.is_set)
            threading.Thread(target=feed, daemon=True).start()
            card = page.locator(f'[data-testid="call-card"][data-call-id="{call.call_id}"]')
            card.wait_for(timeout=60_000)
            risk = card.locator('[data-testid="risk"]')
            first = risk.inner_text()
            # the card keeps updating as the call goes on: its duration text changes within seconds
            sub = card.locator(".sub")
            before = sub.inner_text()
            page.wait_for_function("([sel, old]) => document.querySelector(sel).innerText !== old",
                                   arg=[f'[data-call-id="{call.call_id}"] .sub', before], timeout=15_000)
            assert re.match(r"risk \d+", first)
            page.screenshot(path=f"{shots}/wall.png")
            # the 35 s hold raises the long-silence alert (deterministic: it depends on the VAD, not the models)
            alert = page.locator('[data-testid="alert-item"]', has_text="long_silence").first
            alert.wait_for(timeout=60_000)
            assert call.call_id in alert.inner_text()
            page.screenshot(path=f"{shots}/alert.png")
            alert.locator('[data-testid="ack"]').click()
            page.locator('[data-testid="acked"]', has_text="acknowledged by supervisor").first.wait_for(timeout=10_000)
            sentiment = card.locator('[data-testid="customer-sentiment"]').inner_text()
            assert re.search(r"-?\d\.\d\d (negative|neutral|positive)", sentiment), sentiment
            card.click()
            page.locator('[data-testid="timeline"] polyline').first.wait_for(timeout=10_000)
            page.screenshot(path=f"{shots}/drill-down.png")
            page.locator("#close").click()
            # closed means closed: a redraw whose fetch was in flight must not reopen it
            page.locator("#drill").wait_for(state="hidden", timeout=5_000)
            page.wait_for_timeout(1_500)
            assert page.locator("#drill").is_hidden()
            page.click('nav button[data-view="kpis"]')
            page.screenshot(path=f"{shots}/kpis.png")
        # the same alert went to Kafka, with a stable id shared by its open and clear events
        consumer = KafkaConsumer("calls.alerts", bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest",
                                 consumer_timeout_ms=8000, enable_auto_commit=False)
        alerts = [json.loads(m.value) for m in consumer]
        consumer.close()
        silence = [a for a in alerts if a["rule"] == "long_silence" and a["call_id"] == call.call_id]
        assert silence and silence[0]["state"] == "open" and silence[0]["severity"] == "info"
    finally:
        done.set()
        worker.stop()
