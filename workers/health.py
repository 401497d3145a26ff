"""Liveness of a worker, and the HTTP endpoint that serves it next to ``/metrics``.

The core runs in one executor thread under a lock, so a core that never returns (the issue-17 freeze) stops
every call while ``/metrics`` still answers from its own thread. ``Liveness`` records when the core last
finished a run (a consumer batch or the 1 s timer) and since when the current run has been going; the event
loop beats once a second. ``/healthz`` answers 503 when the core has been inside ONE run for more than
``stuck_after_s``, or when the event loop has not beaten for that long. A worker merely waiting for Redis or
Kafka (the core idle, the loop beating) stays healthy: restarting it would not bring Redis back, and the
``callpulse_last_batch_age_seconds`` gauge shows that wait to Prometheus instead.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

T = TypeVar("T")
HEALTH_PATH = "/healthz"


class Liveness:
    def __init__(self, stuck_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stuck_after_s = stuck_after_s
        self.clock = clock
        self.last_done = self.last_beat = clock()
        self.running_since: float | None = None

    def run(self, fn: Callable[..., T], *args) -> T:
        """Run one core call (in the executor thread), timing it."""
        self.running_since = self.clock()
        try:
            return fn(*args)
        finally:
            self.running_since = None
            self.last_done = self.clock()

    def beat(self) -> None:
        self.last_beat = self.clock()

    def last_batch_age(self) -> float:
        """Seconds since the core last finished a run (0 while it is between runs of a healthy worker)."""
        return max(self.clock() - self.last_done, 0.0)

    def core_run_seconds(self) -> float:
        """How long the current core run has lasted; 0 when the core is idle."""
        since = self.running_since
        return 0.0 if since is None else max(self.clock() - since, 0.0)

    def report(self) -> tuple[bool, dict]:
        run_s, beat_age = self.core_run_seconds(), max(self.clock() - self.last_beat, 0.0)
        problems = []
        if run_s > self.stuck_after_s:
            problems.append(f"the core has been in one run for {run_s:.0f} s (limit {self.stuck_after_s:g} s)")
        if beat_age > self.stuck_after_s:
            problems.append(f"the event loop has not run for {beat_age:.0f} s (limit {self.stuck_after_s:g} s)")
        return not problems, {"ok": not problems, "problems": problems, "core_run_s": round(run_s, 3),
                              "last_batch_age_s": round(self.last_batch_age(), 3), "loop_beat_age_s": round(beat_age, 3)}


def start_http_endpoint(port: int, host: str, liveness: Liveness, registry: CollectorRegistry = REGISTRY) -> ThreadingHTTPServer:
    """Serve ``/metrics`` (Prometheus text) and ``/healthz`` (JSON; 200 or 503) from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            path = self.path.split("?", 1)[0]
            if path == HEALTH_PATH:
                ok, body = liveness.report()
                self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
            elif path in ("/metrics", "/"):
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            else:
                self._send(404, "text/plain", b"not found: /metrics or /healthz\n")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:   # probes every few seconds would flood the worker log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="callpulse-http", daemon=True).start()
    return server
