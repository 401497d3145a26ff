"""Run labelled calls through the analysis and collect what came out, per call: alert events, timeline entries,
the end-of-call summary, and (in-process only) the metrics every rule evaluation saw.

Two ways, one result shape:
- ``run_in_process``: the calls' frames through ``workers.pipeline.Pipeline`` directly (no broker, no Redis),
  call after call, the clock following the audio. Fast and deterministic: what tuning uses.
- ``run_stack``: the calls replayed (``stream.replay``) into a real broker, analysed by a real ``callpulse worker``
  subprocess, and read back from Redis, as a user would run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from . import topics
from .events import CallEvent
from .frame import LEGS, AudioFrame, encode_frame
from .localstack import LocalStack, _die_with_parent, create_topics, free_port
from .producer import ENCODERS, CallProducer
from .redis_keys import Keys
from .replay import ReplayCall, load_call, replay
from .settings import Settings

T0 = 1_700_000_000.0          # capture clock of the first chunk of an in-process call
BATCH_RECORDS = 32            # in-process batch size (the pipeline's results do not depend on it)
WAIT_MARGIN_S = 120.0         # stack mode: how long past the replay to wait for the last summary
POLL_S = 0.5
TRUNCATION_SLACK_S = 2.0     # the last analysed step ends within a hop (1 s) of the audio's end


def default_rules_path(settings: Settings) -> str:
    return settings.rules_path or str(Path(__file__).resolve().parents[1] / "workers" / "default_rules.yaml")


def load_calls(folder: Path, calls: list[dict], suffix: str = "") -> list[ReplayCall]:
    return [load_call(str(folder / c["file"]), c["call_id"] + suffix) for c in calls]


class RecordingRules:
    """Wraps a rule engine and keeps, per call, every step's (t, at, metrics): the input of an offline re-run."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.steps: dict[str, list[tuple[float, float, dict[str, float]]]] = {}

    @property
    def evidence(self) -> Any:
        """The wrapped rules' ``evidence:`` settings (workers.evidence), which the pipeline reads."""
        return self.engine.evidence

    def evaluate(self, call_id: str, t: float, at: float, metrics: dict[str, float], evidence: Any = None) -> list:
        self.steps.setdefault(call_id, []).append((t, at, dict(metrics)))
        return self.engine.evaluate(call_id, t, at, metrics, evidence)

    def export_state(self, call_id: str) -> dict:
        return self.engine.export_state(call_id)

    def restore_state(self, call_id: str, state: dict) -> None:
        self.engine.restore_state(call_id, state)

    def forget(self, call_id: str) -> None:
        self.engine.forget(call_id)


def truncated_calls(calls: list[dict], results: dict[str, dict], slack_s: float = TRUNCATION_SLACK_S) -> list[str]:
    """Calls whose timeline stops well before the end of their audio: analysis ended early."""
    out = []
    for c in calls:
        steps = [float(e["t"]) for e in results[c["call_id"]]["timeline"]]
        if not steps or max(steps) < c["duration_s"] - slack_s:
            out.append(c["call_id"])
    return out


def call_records(call: ReplayCall, chunk_ms: int, encoding: str, t0: float = T0) -> list[tuple[float, Any]]:
    """(capture time, Record) for a whole call as a gateway sends it: start, chunks of both legs in capture order, end."""
    from workers.batch import Record
    key = call.call_id.encode()
    n = call.sample_rate * chunk_ms // 1000
    out = [(t0, Record(topics.EVENTS, key, CallEvent(type="start", call_id=call.call_id, ts=t0, **call.metadata).to_bytes(), partition=0))]
    total = max(len(x) for x in call.legs.values())
    for seq, i in enumerate(range(0, total, n)):
        for leg in LEGS:
            part = call.legs[leg][i:i + n]
            if len(part) * 1000 >= 20 * call.sample_rate:          # as replay: a tail under 20 ms is not sent
                ts = t0 + i / call.sample_rate
                frame = AudioFrame(call.call_id, leg, seq, ts, call.sample_rate, encoding, ENCODERS[encoding](part))
                out.append((ts + chunk_ms / 1000, Record(topics.AUDIO, key, encode_frame(frame), partition=0)))
    end = t0 + call.duration_s
    out.append((end, Record(topics.EVENTS, key, CallEvent(type="end", call_id=call.call_id, ts=end).to_bytes(), partition=0)))
    return out


def run_in_process(calls: list[ReplayCall], settings: Settings, models: Any, rules: Any, chunk_ms: int = 200,
                   encoding: str = "mulaw", progress: Callable[[str], None] = lambda m: None) -> tuple[dict, dict]:
    """Returns (results by call id, recorded rule steps by call id)."""
    from prometheus_client import CollectorRegistry

    from workers.metrics import WorkerMetrics
    from workers.pipeline import Pipeline
    recorder = RecordingRules(rules)
    results: dict[str, dict] = {}
    for call in calls:
        now = [T0]
        pipe = Pipeline(settings, models, models.emotion.labels, WorkerMetrics(CollectorRegistry()), recorder, clock=lambda: now[0])
        res = {"alerts": [], "timeline": [], "summary": None}
        records = call_records(call, chunk_ms, encoding)
        batches = [records[i:i + BATCH_RECORDS] for i in range(0, len(records), BATCH_RECORDS)]
        for batch in batches:
            now[0] = batch[-1][0]
            _collect(pipe.process([r for _, r in batch]), res)
        while res["summary"] is None:              # the end event waits for the last audio: let the grace period pass
            now[0] += settings.end_grace_s + 1
            _collect(pipe.process([]), res)
        results[call.call_id] = res
        progress(f"{call.call_id}: {sum(a['state'] == 'open' for a in res['alerts'])} alert(s)")
    return results, recorder.steps


def _collect(out: Any, res: dict) -> None:
    res["alerts"].extend(a.to_dict() for a in out.alerts)
    res["timeline"].extend(entry for _, entry in out.timeline)
    if out.summaries:
        res["summary"] = out.summaries[-1]


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stream.cli", "worker", "--metrics-port", str(free_port())], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                            cwd=str(Path(__file__).resolve().parents[1]))


def run_stack(calls: list[ReplayCall], settings: Settings, bootstrap: str | None, redis_url: str | None, speed: float,
              chunk_ms: int = 200, encoding: str = "mulaw", start_worker: bool = True, logdir: Path | None = None,
              concurrency: int = 8, progress: Callable[[str], None] = lambda m: None) -> dict:
    """Replay ``calls`` (ids made unique for this run), ``concurrency`` at a time, and read their alerts, timelines
    and summaries back from Redis. Starts the embedded broker and Redis unless given, and one worker unless
    ``start_worker`` is False.

    A worker that falls more than ``end_grace_s`` behind the audio ends a call when its end event arrives, before
    the rest of its audio: too many calls at too high a speed truncate them (``truncated_calls`` finds them)."""
    import redis
    run = uuid.uuid4().hex[:6]
    ids = {c.call_id: f"{c.call_id}~{run}" for c in calls}
    sent = [ReplayCall(ids[c.call_id], c.legs, c.sample_rate, c.metadata) for c in calls]
    logdir = logdir or Path(os.environ.get("TMPDIR", "/tmp")) / f"callpulse-evaluate-{run}"
    logdir.mkdir(parents=True, exist_ok=True)
    stack, worker = None, None
    try:
        if not bootstrap or not redis_url:
            stack = LocalStack(partitions=settings.partitions, logdir=str(logdir)).start()
            bootstrap, redis_url = bootstrap or stack.bootstrap_servers, redis_url or stack.redis_url
        else:
            create_topics(bootstrap, settings.partitions)
        if start_worker:
            env = {**os.environ, "CALLPULSE_BOOTSTRAP_SERVERS": bootstrap, "CALLPULSE_REDIS_URL": redis_url,
                   "CALLPULSE_WORKER_NAME": f"evaluate-{run}", "CALLPULSE_RULES_PATH": default_rules_path(settings),
                   "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
            if settings.model_dir:
                env["CALLPULSE_MODEL_DIR"] = settings.model_dir
            env["CALLPULSE_MODEL_PROFILE"] = settings.model_profile
            worker = _start_worker(env, logdir / "worker.log")
        progress(f"replaying {len(sent)} call(s) at {speed:g}x, {concurrency} at a time, into {bootstrap}")
        with CallProducer(bootstrap) as producer:
            for i in range(0, len(sent), concurrency):
                replay(producer, sent[i:i + concurrency], speed=speed, chunk_ms=chunk_ms, encoding=encoding)
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        keys = Keys(settings.redis_prefix)
        deadline = time.monotonic() + WAIT_MARGIN_S
        pending = set(ids.values())
        while pending:
            if worker is not None and worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}; see {logdir / 'worker.log'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no summary within {WAIT_MARGIN_S:g} s after the replay for {sorted(pending)}; see {logdir}")
            pending = {cid for cid in pending if not r.exists(keys.summary(cid))}
            if pending:
                time.sleep(POLL_S)
        alerts = [fields for _, fields in r.xrange(keys.alerts)]
        results = {}
        for orig, cid in ids.items():
            results[orig] = {"alerts": [a for a in alerts if a["call_id"] == cid],
                             "timeline": [fields for _, fields in r.xrange(keys.timeline(cid))],
                             "summary": json.loads(r.get(keys.summary(cid)))}
        return results
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(5)
        if stack is not None:
            stack.stop()
