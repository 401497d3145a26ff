"""The fault matrix's yardstick: every call of a disturbed run against the same call through an undisturbed
worker, field by field, classified as identical / lost (no summary) / partly lost (a counter below the reference) / double-counted (a
counter above it) / different (same amounts, other values)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from stream import topics
from stream.localstack import LocalStack
from stream.redis_keys import Keys
from tests.support import tone_leg

K = Keys()
T0 = time.time() - 120
# Per-call counters beside the summary: analysed windows per leg, and the 1 s steps written to the timeline.
COUNTER_FIELDS = ("agent_windows", "customer_windows", "turns_agent", "turns_customer", "interruptions_agent",
                  "interruptions_customer", "alerts", "duration_s")
SUMMARY_AMOUNTS = ("duration_s", "agent_speech_s", "customer_speech_s", "turns_agent", "turns_customer", "overtalk_s")
RESULTS_FILE = Path(os.environ.get("CALLPULSE_FAULT_RESULTS", "artifacts/fault_matrix.jsonl"))
METADATA = dict(queue="billing", campaign="spring", agent_id="a7", language="en", direction="inbound")


def call_legs(duration: float = 30.0, seed: int = 3) -> dict:
    return {"agent": tone_leg([(0, 6), (10, 16), (22, 27)], duration, seed=seed),
            "customer": tone_leg([(5, 11), (15, 23), (26, min(30, duration))], duration, seed=seed + 1)}


def snapshot(r, call_id: str, timeline: bool = True) -> dict | None:
    """The end-of-call summary (without its id) and the per-call counters; None when the call never ended."""
    raw = r.get(K.summary(call_id))
    if raw is None:
        return None
    summary = json.loads(raw)
    summary.pop("call_id")
    h = r.hgetall(K.call(call_id))
    counters = {f: h.get(f) for f in COUNTER_FIELDS}
    if timeline:
        counters["timeline_steps"] = r.xlen(K.timeline(call_id))
    return {"summary": summary, "counters": counters}


def verdict(ref: dict, got: dict | None) -> str:
    if got is None:
        return "lost"
    if got == ref:
        return "identical"
    pairs = [(_num(v), _num(ref["counters"].get(k))) for k, v in got["counters"].items()]
    pairs += [(_num(got["summary"].get(k)), _num(ref["summary"].get(k))) for k in SUMMARY_AMOUNTS]
    if any(g > r for g, r in pairs):
        return "double-counted"
    return "partly lost" if any(g < r for g, r in pairs) else "different"


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def compare(r, ref_id: str, call_ids: list[str], fault: str, timeline: bool = True) -> dict[str, str]:
    """Verdict per call against ``ref_id``; appended to the results file (one JSON line per fault) for the README."""
    ref = snapshot(r, ref_id, timeline)
    assert ref is not None, f"the reference call {ref_id} did not end"
    verdicts = {cid: verdict(ref, snapshot(r, cid, timeline)) for cid in call_ids}
    record(fault, verdicts)
    return verdicts


def record(fault: str, verdicts: dict[str, str]) -> None:
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS_FILE.open("a") as f:
        counts = {v: sum(1 for x in verdicts.values() if x == v) for v in ("identical", "lost", "partly lost", "double-counted", "different")}
        f.write(json.dumps({"fault": fault, "calls": len(verdicts), **counts, "at": time.time()}) + "\n")


def diff(r, ref_id: str, call_id: str) -> dict:
    """What differs, for an assertion message."""
    a, b = snapshot(r, ref_id), snapshot(r, call_id)
    if b is None:
        return {"missing": call_id}
    return {section: {k: (a[section].get(k), b[section].get(k)) for k in set(a[section]) | set(b[section])
                      if a[section].get(k) != b[section].get(k)} for section in ("summary", "counters")}


def send_frames(producer, call_id: str, frames, start: bool = False, end_ts: float | None = None) -> None:
    if start:
        producer.start_call(call_id, ts=T0, **METADATA)
    for _, _, data in frames:
        producer.send_raw(topics.AUDIO, call_id.encode(), data)
    if end_ts is not None:
        producer.end_call(call_id, ts=end_ts)
    producer.flush()


@contextmanager
def fault_stack(tmp_path, **kwargs):
    """A LocalStack on Apache Kafka (unless told otherwise) whose files live in the test's tmp dir."""
    kwargs.setdefault("broker", "apache_kafka")
    with LocalStack(logdir=str(tmp_path), **kwargs) as stack:
        yield stack


def worker_env_for(stack: LocalStack, tmp_path, **extra: str) -> dict[str, str]:
    env = {"CALLPULSE_BOOTSTRAP_SERVERS": stack.bootstrap_servers, "CALLPULSE_REDIS_URL": stack.redis_url,
           "CALLPULSE_TEST_LOGDIR": str(tmp_path), "CALLPULSE_INACTIVITY_TIMEOUT_S": "60", **extra}
    if os.environ.get("CALLPULSE_MODEL_DIR"):
        env["CALLPULSE_MODEL_DIR"] = os.environ["CALLPULSE_MODEL_DIR"]
    return env


class Throttle:
    """Holds a process to ``share`` of the CPU it would get: it runs ``period_s * share`` seconds, then is stopped
    (SIGSTOP) for the rest of each period. Pauses of a fifth of a second are far below the consumer group's
    session timeout. The process is always resumed on exit."""

    def __init__(self, pid: int, share: float, period_s: float = 0.2) -> None:
        self.pid, self.on_s, self.off_s = pid, period_s * share, period_s * (1 - share)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="throttle", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.on_s):
                os.kill(self.pid, signal.SIGSTOP)
                time.sleep(self.off_s)
                os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def __enter__(self) -> "Throttle":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        try:
            os.kill(self.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
