"""Issue 17: CSRF on the acknowledge. In headless Chromium holding the supervisor's basic-auth credentials, an
auto-submitting form on another local origin must not acknowledge an alert; the dashboard's own button must."""

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from dashboard_support import browser_page, chromium_path, dashboard_server
from stream.localstack import free_port
from stream.redis_keys import Keys

pytestmark = [pytest.mark.browser, pytest.mark.integration]

if chromium_path() is None:
    import os
    if os.environ.get("CI"):
        raise RuntimeError("chromium is missing in CI: scripts/test.sh installs Debian's chromium package")
    pytest.skip("Debian chromium not installed", allow_module_level=True)

ALERT_ID = "csrf-call:long_silence:1"


@contextmanager
def attacker_site(html: str):
    """Another origin (``localhost`` on its own port, not the dashboard's ``127.0.0.1``) serving one page."""
    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{port}/"
    finally:
        server.shutdown()


def seed_alert(r: redis.Redis, keys: Keys) -> None:
    r.xadd(keys.alerts, {"alert_id": ALERT_ID, "call_id": "csrf-call", "rule": "long_silence", "severity": "info",
                         "state": "open", "message": "nobody has spoken for 30 s", "value": "30", "threshold": "30",
                         "t": "42", "at": str(time.time()), "queue": "billing"})


def test_a_cross_origin_form_cannot_acknowledge_but_the_dashboard_button_can(stack):
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    keys = Keys()
    seed_alert(r, keys)
    try:
        with dashboard_server(stack.redis_url) as url, browser_page(url) as page:
            page.locator('[data-testid="alert-item"]', has_text="long_silence").first.wait_for(timeout=20_000)
            form = (f'<form id="f" method="POST" action="{url}/api/alerts/{ALERT_ID}/ack">'
                    '<input type="hidden" name="x" value="1"></form><script>document.getElementById("f").submit()</script>')
            with attacker_site(form) as evil:
                attack = page.context.new_page()
                with attack.expect_navigation(url=f"{url}/api/alerts/**", timeout=20_000):
                    attack.goto(evil)
                body = attack.content()
                status = attack.evaluate("() => performance.getEntriesByType('navigation')[0].responseStatus")
                attack.close()
            assert r.hget(keys.alerts_acked, ALERT_ID) is None, "the cross-origin form acknowledged the alert"
            assert status == 403 and "X-Requested-With" in body, (status, body[:300])
            page.locator('[data-testid="ack"]').first.click()
            page.locator('[data-testid="acked"]', has_text="acknowledged by supervisor").first.wait_for(timeout=10_000)
            assert '"by": "supervisor"' in r.hget(keys.alerts_acked, ALERT_ID)
    finally:
        r.close()
