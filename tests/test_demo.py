"""`callpulse demo` as a user runs it: everything starts on 127.0.0.1, live calls show up in Redis, on /metrics
and on the dashboard, and everything stops when it ends."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from stream.localstack import free_port
from support import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_end_to_end_and_leaves_nothing_behind(tmp_path):
    mport, dport = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CALLPULSE_DEMO_LOGDIR": str(tmp_path)}
    env.pop("CALLPULSE_BOOTSTRAP_SERVERS", None)
    env.pop("CALLPULSE_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "demo", "--duration", "45", "--metrics-port", str(mport),
                             "--dashboard-port", str(dport)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        while True:
            line = proc.stdout.readline()
            assert line, "demo exited early:\n" + "".join(lines)
            lines.append(line)
            if "replaying the sample calls" in line:
                break
        text = "".join(lines)
        redis_url = re.search(r"embedded Redis \(Valkey\)\s+(redis://127\.0\.0\.1:\d+/0)", text).group(1)
        assert re.search(r"embedded broker \(tansu\)\s+127\.0\.0\.1:\d+", text)
        user, password = re.search(r"\(user (\S+), password (\S+)\)", text).groups()
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        ids = wait_for(lambda: r.zrange("cp:calls:active", 0, -1), 40, what="live calls in Redis")
        assert {i.rsplit("-", 1)[0] for i in ids} <= {"demo-it-angry", "demo-en-silence", "demo-en-happy"}
        wait_for(lambda: r.hget(f"cp:call:{ids[0]}", "customer_windows") not in (None, "0"), 30, what="scores")
        if "transcriber metrics" in text:   # on by default when the 'transcribe' extra is installed (CI installs it)
            wait_for(lambda: any(r.xlen(f"cp:call:{i}:transcript") for i in r.zrange("cp:calls:active", 0, -1)), 40, what="a live transcript")
        elif os.environ.get("CI"):
            raise AssertionError("the demo ran without its transcriber in CI:\n" + text)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        assert re.search(r"^callpulse_chunks_total\{leg=\"agent\"\} [1-9]", metrics, re.M)
        req = urllib.request.Request(f"http://127.0.0.1:{dport}/api/calls")
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        assert b"demo-" in urllib.request.urlopen(req, timeout=5).read()
        rest, _ = proc.communicate(timeout=90)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines)
    assert "stopped: worker, dashboard, broker and Redis" in "".join(lines)
    time.sleep(0.5)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url).ping()


def _interruptible() -> None:
    """SIGINT at its default, as in a terminal's foreground job. A shell without job control starts background
    commands with SIGINT ignored, and the demo (and pytest above it) inherits that: Python then installs no
    KeyboardInterrupt, only the dashboard reacts to the test's Ctrl-C, and the demo reports its exit as a failure."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_the_demo_cleanly_and_promptly(tmp_path):
    """A terminal's Ctrl-C signals the demo's whole process group. The embedded servers must not die first: the
    replay's producer then failed against a dead broker for ~25 s and its exit flush printed a traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CALLPULSE_DEMO_LOGDIR": str(tmp_path), "CALLPULSE_TRANSCRIPTS_ENABLED": "false"}
    env.pop("CALLPULSE_BOOTSTRAP_SERVERS", None)
    env.pop("CALLPULSE_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "demo", "--metrics-port", str(free_port()),
                             "--dashboard-port", str(free_port())], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,   # its own group, as a shell's job
                            preexec_fn=_interruptible)
    lines = []
    try:
        while "replaying the sample calls" not in (line := proc.stdout.readline()):
            assert line, "demo exited early:\n" + "".join(lines)
            lines.append(line)
        redis_url = re.search(r"embedded Redis \(Valkey\)\s+(redis://127\.0\.0\.1:\d+/0)", "".join(lines)).group(1)
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        wait_for(lambda: r.zrange("cp:calls:active", 0, -1), 40, what="live calls in Redis")   # the replay is sending
        os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        rest, _ = proc.communicate(timeout=60)
        took = time.monotonic() - t0
        lines.append(rest)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "stopped: worker, dashboard, broker and Redis" in out
    assert not re.search(r"Traceback|ECONNREFUSED|KafkaTimeoutError|Connection refused", rest), rest
    assert took < 20, f"{took:.1f} s from Ctrl-C to exit:\n{rest}"
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url).ping()
