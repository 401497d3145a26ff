"""Headless Chromium: the supervisor sees why an alert fired. The sample escalation call is replayed through the
real broker, worker and Redis; the anger alert in the feed carries its evidence, and the drill-down timeline shows
labelled time and sentiment axes, emotion bands over the turns, the alert marker and the evidence spans."""

import os
import threading

import pytest

from dashboard_support import browser_page, chromium_path, dashboard_server, screenshots_dir
from stream.producer import CallProducer
from stream.replay import load_sample_calls, replay
from support import WorkerProcess

pytestmark = [pytest.mark.browser, pytest.mark.integration]

if chromium_path() is None:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing in CI: scripts/test.sh installs Debian's chromium package")
    pytest.skip("Debian chromium not installed", allow_module_level=True)


def test_the_anger_alert_shows_its_evidence_in_the_feed_and_the_drill_down(stack, worker_env):
    call = next(c for c in load_sample_calls("-why") if c.call_id.startswith("demo-it-angry"))
    worker = WorkerProcess(worker_env).start()
    shots = screenshots_dir()
    done = threading.Event()
    try:
        with dashboard_server(stack.redis_url) as url, browser_page(url) as page:
            def feed():
                with CallProducer(stack.bootstrap_servers) as p:
                    replay(p, [call], speed=2.0, chunk_ms=200, stop=done.is_set)
            threading.Thread(target=feed, daemon=True).start()
            alert = page.locator('[data-testid="alert-item"]', has_text="customer_anger").first
            alert.wait_for(timeout=90_000)
            evidence = alert.locator('[data-testid="alert-evidence"]').inner_text()
            assert "evidence" in evidence and "baseline" in evidence and "heard 0:1" in evidence and "turns" in evidence, evidence
            page.locator(f'[data-testid="call-card"][data-call-id="{call.call_id}"]').click()
            timeline = page.locator('[data-testid="timeline"]')
            timeline.locator('[data-testid="alert-marker"]').first.wait_for(timeout=15_000)
            # the drill-down refreshes with every snapshot: wait for the end of the call (the summary) to draw it whole
            page.locator('[data-testid="summary"]', has_text="End of call").wait_for(timeout=90_000)
            svg = timeline.inner_html()
            for label in ("sentiment", "call time (m:ss)", "+1", "-1", "0:30", "customer", "agent", "⚠ customer_anger"):
                assert label in svg, label
            assert timeline.locator('[data-testid="evidence-span"]').count() >= 1
            colours = {r.get_attribute("fill") for r in timeline.locator("rect").all()}
            assert "#D55E00" in colours and ("#BBBBBB" in colours or "#009E73" in colours)   # angry and calm turns
            rows = page.locator('[data-testid="evidence-row"]', has_text="customer_anger")
            assert "peak" in rows.first.inner_text()
            page.locator(".drill-box").screenshot(path=f"{shots}/drill-down-evidence.png")
    finally:
        done.set()
        worker.stop()
