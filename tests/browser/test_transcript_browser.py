"""Headless Chromium on the call drill-down while a real Italian sample call goes through the real broker, an
emotion worker, a real transcriber (Whisper-base) and Redis: the transcript appears per leg, cues highlighted."""

import os
import threading

import pytest

from dashboard_support import browser_page, chromium_path, dashboard_server, screenshots_dir
from stream.producer import CallProducer
from stream.replay import ReplayCall, load_sample_calls, replay
from support import WorkerProcess

pytestmark = [pytest.mark.browser, pytest.mark.integration]
pytest.importorskip("ctranslate2", reason="the 'transcribe' extra is not installed (scripts/test.sh installs it)")

if chromium_path() is None:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing in CI: scripts/test.sh installs Debian's chromium package")
    pytest.skip("Debian chromium not installed", allow_module_level=True)

SECONDS = 24.0
# a phrase of the sample call's customer (EMOVO's "I vigili sono muniti di pistola"), as a cue for this test
CUES = "cues:\n  - name: cue_weapon\n    severity: critical\n    leg: customer\n    phrases: {it: [\"pistol*\"]}\n"


def test_the_drill_down_shows_the_live_transcript_per_leg_with_cues_highlighted(stack, worker_env, tmp_path):
    full = next(c for c in load_sample_calls("-tx") if c.call_id.startswith("demo-it-angry"))
    n = int(SECONDS * full.sample_rate)
    call = ReplayCall(full.call_id, {leg: x[:n] for leg, x in full.legs.items()}, full.sample_rate, full.metadata)
    (tmp_path / "cues.yaml").write_text(CUES)
    worker = WorkerProcess(worker_env).start()
    tx = WorkerProcess({**worker_env, "CALLPULSE_CUES_PATH": str(tmp_path / "cues.yaml")}, name="t1", subcommand="transcriber").start()
    shots = screenshots_dir()
    done = threading.Event()
    try:
        with dashboard_server(stack.redis_url) as url, browser_page(url) as page:
            def feed():
                with CallProducer(stack.bootstrap_servers) as p:
                    replay(p, [call], speed=2.0, chunk_ms=200, stop=done.is_set)
            threading.Thread(target=feed, daemon=True).start()
            card = page.locator(f'[data-testid="call-card"][data-call-id="{call.call_id}"]')
            card.wait_for(timeout=60_000)
            card.click()
            lines = page.locator('[data-testid="transcript-line"]')
            lines.first.wait_for(timeout=90_000)
            # both legs get their lines and their lane boxes on the timeline's axis, and the cue is highlighted
            page.locator('[data-testid="transcript-line"][data-leg="agent"]').first.wait_for(timeout=60_000)
            cue = page.locator('[data-testid="cue"]', has_text="pistol").first
            cue.wait_for(timeout=90_000)
            assert page.locator('[data-testid="transcript-line"][data-leg="customer"]').count() >= 1
            assert page.locator('[data-testid="transcript-segment"]').count() >= 2
            page.locator("#timeline .tx-cues line").first.wait_for(state="attached", timeout=30_000)
            assert "cue_weapon" in page.locator('[data-testid="transcript"]').inner_text()
            page.screenshot(path=f"{shots}/drill-down-transcript.png")
            # the cue also reached the alert feed, in the rule engine's alert shape
            page.locator('[data-testid="alert-item"]', has_text="cue_weapon").first.wait_for(timeout=20_000)
    finally:
        done.set()
        tx.stop()
        worker.stop()
