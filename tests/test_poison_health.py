"""Issue 17, liveness: a core stuck in one run turns /healthz red (the freeze left /metrics answering and the lag
gauge at 0, so nothing noticed); the age of the last completed core run is a Prometheus gauge."""

import json
import threading
import time
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry

from stream.localstack import free_port
from support import wait_for
from workers.health import Liveness, start_http_endpoint
from workers.metrics import WorkerMetrics

STUCK_AFTER_S = 0.5


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def gauge(text: str, name: str) -> float:
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def test_a_stuck_core_turns_the_probe_red_and_the_gauges_show_it():
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    live = Liveness(STUCK_AFTER_S)
    metrics.last_batch_age.set_function(live.last_batch_age)
    metrics.core_run_seconds.set_function(live.core_run_seconds)
    port = free_port()
    server = start_http_endpoint(port, "127.0.0.1", live, registry)
    base = f"http://127.0.0.1:{port}"
    beating = threading.Event()

    def loop_beats():              # the event loop's heartbeat keeps going while the core is stuck
        while not beating.is_set():
            live.beat()
            time.sleep(0.05)

    release = threading.Event()
    threading.Thread(target=loop_beats, daemon=True).start()
    try:
        live.run(lambda: None)                     # one healthy batch
        assert get(base + "/healthz")[0] == 200
        core = threading.Thread(target=live.run, args=(release.wait,), daemon=True)   # a core that never returns
        core.start()
        status, body = wait_for(lambda: (r := get(base + "/healthz"))[0] == 503 and r, timeout=10, what="503 from /healthz")
        report = json.loads(body)
        assert not report["ok"] and "the core has been in one run" in report["problems"][0]
        text = get(base + "/metrics")[1]
        assert gauge(text, "callpulse_core_run_seconds") > STUCK_AFTER_S
        assert gauge(text, "callpulse_last_batch_age_seconds") > STUCK_AFTER_S
        release.set()
        core.join(5)
        assert get(base + "/healthz")[0] == 200
        assert gauge(get(base + "/metrics")[1], "callpulse_core_run_seconds") == 0.0
        assert get(base + "/nope")[0] == 404
    finally:
        release.set()
        beating.set()
        server.shutdown()


def test_a_blocked_event_loop_turns_the_probe_red():
    live = Liveness(STUCK_AFTER_S)
    port = free_port()
    server = start_http_endpoint(port, "127.0.0.1", live, CollectorRegistry())
    try:
        live.beat()
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        time.sleep(STUCK_AFTER_S + 0.3)            # no beat: the loop is blocked
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503 and "event loop has not run" in body
    finally:
        server.shutdown()


def test_kubernetes_and_compose_probe_the_health_endpoint():
    from pathlib import Path
    import yaml
    deploy = Path(__file__).resolve().parents[1] / "deploy"
    docs = list(yaml.safe_load_all((deploy / "k8s" / "callpulse.yaml").read_text()))
    worker = next(d for d in docs if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "callpulse-worker")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    services = yaml.safe_load((deploy / "docker-compose.yml").read_text())["services"]
    for name in ("worker-1", "worker-2", "worker-3"):
        assert "/healthz" in " ".join(services[name]["healthcheck"]["test"])
