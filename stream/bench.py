"""``callpulse bench``: concurrent two-leg calls at real-time pace through the real broker, a real worker
process pinned to one core, and the real Redis; plus the same models alone, in the same run.

Figures: calls sustained at real time per worker core, end-to-end latency (a step's last captured sample to
its Redis write) p50/p99 from the worker's histogram, worker memory per live call, and inference-bound calls
per core. Writes the result as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .frame import HEADER, LEGS, MAGIC, VERSION
from .localstack import LocalStack, free_port
from .producer import CallProducer
from . import topics

SR = 8000
WORKER_CORE = 0
DRAIN_TIMEOUT_S = 10.0
SUSTAINED_P99_S = 1.0          # a run "keeps up" when every step is written and p99 stays under this


@dataclass
class RunResult:
    calls: int
    seconds: float
    chunk_ms: int
    messages: int
    expected_steps: int
    written_steps: int
    sustained: bool
    p50_latency_ms: float | None
    p99_latency_ms: float | None
    worker_cpu_utilisation: float
    rss_idle_bytes: int
    rss_peak_bytes: int
    rss_bytes_per_call: float
    scored_window_share: float
    send_lag_max_s: float


@dataclass
class BenchResult:
    runs: list[RunResult] = field(default_factory=list)
    realtime_calls_per_core: int = 0
    p50_latency_ms: float | None = None
    p99_latency_ms: float | None = None
    rss_bytes_per_call: float | None = None           # (peak - idle RSS) / calls: includes buffers that grow with throughput
    rss_marginal_bytes_per_call: float | None = None  # slope of peak RSS over calls between sustained runs (saturation mode)
    inference_bound_calls_per_core: float = 0.0
    inference_ms_per_window_batched: float = 0.0
    inference_ms_per_window_single: float = 0.0
    machine: dict = field(default_factory=dict)


def speech_like_call(seconds: float, seed: int) -> dict[str, np.ndarray]:
    """Two legs taking turns (3-8 s spurts, syllable-rate envelope, harmonics) over comfort noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    legs = {leg: rng.normal(0, 0.001, n).astype(np.float32) for leg in LEGS}
    t, who = 0.0, 0
    while t < seconds:
        dur = float(rng.uniform(3, 8))
        a, b = int(t * SR), min(int((t + dur) * SR), n)
        tt = np.arange(b - a) / SR
        f0 = 110 + 90 * who + 20 * np.sin(2 * np.pi * 0.5 * tt)
        voice = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SR) / k for k in (1, 2, 3, 4))
        env = np.clip(np.sin(2 * np.pi * 3.5 * tt + rng.uniform(0, 6)), 0, None)
        legs[LEGS[who]][a:b] += (0.15 * env * voice).astype(np.float32)
        t += dur + float(rng.uniform(0.2, 1.5))
        who = 1 - who
    return legs


def _header(call_id: bytes, leg: int, seq: int, ts: float, n: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, leg, 1, len(call_id), SR, seq, round(ts * 1e6), n) + call_id


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _metrics(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def _histogram(text: str, name: str) -> tuple[list[tuple[float, float]], float]:
    buckets, count = [], 0.0
    for line in text.splitlines():
        if line.startswith(name + "_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
        elif line.startswith(name + "_count"):
            count = float(line.rsplit(" ", 1)[1])
    return sorted(buckets), count


def _counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line.split("{", 1)[0].split(" ", 1)[0] == name and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def quantile(buckets: list[tuple[float, float]], q: float, after: list[tuple[float, float]] | None = None) -> float | None:
    """Prometheus-style histogram_quantile with linear interpolation (optionally over the difference of two scrapes)."""
    if after is not None:
        before = dict(buckets)
        buckets = [(le, c - before.get(le, 0.0)) for le, c in after]
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12)
        prev_le, prev_c = le, c
    return prev_le


class WorkerUnderTest:
    def __init__(self, stack: LocalStack) -> None:
        self.port = free_port()
        env = {**os.environ, "CALLPULSE_BOOTSTRAP_SERVERS": stack.bootstrap_servers, "CALLPULSE_REDIS_URL": stack.redis_url,
               "CALLPULSE_INACTIVITY_TIMEOUT_S": "600", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        pin = (lambda: os.sched_setaffinity(0, {WORKER_CORE})) if os.cpu_count() and os.cpu_count() > 1 else None
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker", "--metrics-port", str(self.port)],
                                     env=env, preexec_fn=pin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                _metrics(self.port)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the worker did not start")
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_load(stack: LocalStack, n_calls: int, seconds: float, chunk_ms: int, tag: str, log=print) -> RunResult:
    worker = WorkerUnderTest(stack)
    try:
        chunk = SR * chunk_ms // 1000
        bases = [speech_like_call(seconds + 2, seed) for seed in range(8)]
        payloads = [{leg: [np.clip(b[leg][i:i + chunk] * 32768, -32768, 32767).astype("<i2") for i in range(0, len(b[leg]) - chunk + 1, chunk)]
                     for leg in LEGS} for b in bases]
        from workers.audio import encode_mulaw
        encoded = [{leg: [encode_mulaw(c.astype(np.float32) / 32768) for c in p[leg]] for leg in LEGS} for p in payloads]
        n_chunks = int(seconds * 1000 // chunk_ms)
        producer = CallProducer(stack.bootstrap_servers, linger_ms=2, batch_size=256 * 1024, max_request_size=8 * 1024 * 1024)
        kp = producer.producer
        ids = [f"bench-{tag}-{i}".encode() for i in range(n_calls)]
        # warm-up: let the group join and the models warm before the clock starts
        producer.start_call(f"bench-{tag}-warm", ts=time.time())
        producer.flush()
        time.sleep(4.0)
        rss_idle = _rss(worker.proc.pid)
        before = _metrics(worker.port)
        b_hist, _ = _histogram(before, "callpulse_end_to_end_latency_seconds")
        b_written = _counter(before, "callpulse_end_to_end_latency_seconds_count")
        b_scored = _counter(before, "callpulse_windows_total", speech="true")
        b_all = _counter(before, "callpulse_windows_total")
        t0 = time.time() + 1.0
        for i, cid in enumerate(ids):
            producer.start_call(cid.decode(), ts=t0, queue=f"q{i % 4}", campaign=f"c{i % 2}", agent_id=f"a{i % 50}")
        producer.flush()
        cpu0, wall0 = _cpu_s(worker.proc.pid), time.time()
        rss_peak, send_lag = rss_idle, 0.0
        offsets = [(i / max(n_calls, 1)) * chunk_ms / 1000 for i in range(n_calls)]   # spread calls over a chunk period
        messages = 0
        for seq in range(n_chunks):
            for i, cid in enumerate(ids):
                due = t0 + (seq + 1) * chunk_ms / 1000 + offsets[i]
                wait = due - time.time()
                if wait > 0:
                    time.sleep(wait)
                else:
                    send_lag = max(send_lag, -wait)
                base = encoded[i % len(encoded)]
                capture = t0 + seq * chunk_ms / 1000 + offsets[i]
                for leg_i, leg in enumerate(LEGS):
                    kp.send(topics.AUDIO, key=cid, value=_header(cid, leg_i, seq, capture, chunk) + base[leg][seq])
                    messages += 1
            if seq % 4 == 3:
                rss_peak = max(rss_peak, _rss(worker.proc.pid))
        producer.flush()
        expected = n_calls * 2 * int(n_chunks * chunk_ms / 1000)
        deadline = time.time() + DRAIN_TIMEOUT_S
        while True:
            text = _metrics(worker.port)
            written = _counter(text, "callpulse_end_to_end_latency_seconds_count") - b_written
            if written >= expected or time.time() > deadline:
                break
            time.sleep(0.25)
        wall = time.time() - wall0
        cpu = _cpu_s(worker.proc.pid) - cpu0
        rss_peak = max(rss_peak, _rss(worker.proc.pid))
        a_hist, _ = _histogram(text, "callpulse_end_to_end_latency_seconds")
        p50, p99 = quantile(b_hist, 0.5, a_hist), quantile(b_hist, 0.99, a_hist)
        scored = _counter(text, "callpulse_windows_total", speech="true") - b_scored
        every = _counter(text, "callpulse_windows_total") - b_all
        producer.close()
        sustained = written >= expected and p99 is not None and p99 < SUSTAINED_P99_S and send_lag < 0.5
        r = RunResult(n_calls, seconds, chunk_ms, messages, expected, int(written), sustained,
                      None if p50 is None else round(p50 * 1000, 1), None if p99 is None else round(p99 * 1000, 1),
                      round(cpu / wall, 3), rss_idle, rss_peak, round((rss_peak - rss_idle) / max(n_calls, 1), 1),
                      round(scored / every, 3) if every else 0.0, round(send_lag, 3))
        log(f"  {n_calls:5d} calls: steps {int(written)}/{expected}  p50 {r.p50_latency_ms} ms  p99 {r.p99_latency_ms} ms  "
            f"worker cpu {r.worker_cpu_utilisation:.0%}  rss/call {r.rss_bytes_per_call / 1000:.1f} kB  "
            f"{'sustained' if sustained else 'NOT sustained'}")
        return r
    finally:
        worker.stop()


def inference_bound(seconds: float = 5.0, batch: int = 64) -> tuple[float, float, float]:
    """Windows per second per core for the models alone (batched), and ms per window batched / single."""
    from workers.inference import Models
    if os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {WORKER_CORE})
    models = Models(os.environ.get("CALLPULSE_MODEL_DIR") or None, threads=1)
    rng = np.random.default_rng(0)
    windows = (rng.normal(0, 0.1, (batch, 2 * SR))).astype(np.float32)
    models.predict(windows)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        models.predict(windows)
        n += batch
    batched = (time.perf_counter() - t0) / n
    single_n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2:
        models.predict(windows[:1])
        single_n += 1
    single = (time.perf_counter() - t0) / single_n
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return 1.0 / batched, batched * 1000, single * 1000


def run_bench(args) -> int:
    if getattr(args, "transcribe", False):   # the transcription tier's own figures (stream/bench_transcribe.py)
        from .bench_transcribe import run_transcribe_bench
        return run_transcribe_bench(args)
    result = BenchResult(machine={"cpus": os.cpu_count(), "python": sys.version.split()[0], "worker_core": WORKER_CORE})
    windows_per_s, ms_batched, ms_single = inference_bound()
    # one call at real time = 2 legs x 1 window per hop (1 s), when both legs speak all the time
    result.inference_bound_calls_per_core = round(windows_per_s / 2, 1)
    result.inference_ms_per_window_batched = round(ms_batched, 3)
    result.inference_ms_per_window_single = round(ms_single, 3)
    print(f"models alone: {ms_batched:.3f} ms/window batched, {ms_single:.3f} ms/window single -> "
          f"{result.inference_bound_calls_per_core:.0f} calls/core if every window is speech")
    def measure(n: int, tag: str) -> RunResult:
        # A fresh broker and Redis per run: nothing left over from an earlier run (a backlog, committed
        # offsets, live calls to restore) may leak into this one.
        with LocalStack() as stack:
            return run_load(stack, n, args.seconds, args.chunk_ms, tag)

    if args.saturate:
        lo, hi, n = 0, None, max(args.calls, 50)
        for step in range(8):
            r = measure(n, f"s{step}")
            result.runs.append(r)
            if r.sustained:
                lo = max(lo, n)
                n = n * 2 if hi is None else (n + hi) // 2
            else:
                hi = n
                n = (lo + n) // 2
            if hi is not None and hi - lo <= max(25, lo // 10):
                break
        result.realtime_calls_per_core = lo
        half = max(lo // 2, 1)
        print(f"at half the sustained load ({half} calls):")
        result.runs.append(measure(half, "half"))
    else:
        r = measure(args.calls, "fixed")
        result.runs.append(r)
        result.realtime_calls_per_core = args.calls if r.sustained else 0
    last = result.runs[-1]
    result.p50_latency_ms, result.p99_latency_ms = last.p50_latency_ms, last.p99_latency_ms
    ok = sorted((r for r in result.runs if r.sustained), key=lambda r: r.calls)
    result.rss_bytes_per_call = max(r.rss_bytes_per_call for r in ok) if ok else None
    if len(ok) >= 2 and ok[-1].calls > ok[0].calls:
        result.rss_marginal_bytes_per_call = round((ok[-1].rss_peak_bytes - ok[0].rss_peak_bytes) / (ok[-1].calls - ok[0].calls), 1)
    print()
    print(f"{'realtime_calls_per_core':32s} {result.realtime_calls_per_core}")
    print(f"{'p50_latency_ms':32s} {result.p50_latency_ms}   (at {last.calls} calls)")
    print(f"{'p99_latency_ms':32s} {result.p99_latency_ms}   (target < 500 at half the sustained load)")
    print(f"{'rss_bytes_per_call':32s} {result.rss_bytes_per_call}   (worst sustained run, (peak - idle) / calls; target < 200 kB)")
    print(f"{'rss_marginal_bytes_per_call':32s} {result.rss_marginal_bytes_per_call}   (RSS slope between the smallest and largest sustained runs)")
    print(f"{'inference_bound_calls_per_core':32s} {result.inference_bound_calls_per_core}")
    print(f"{'ratio realtime / inference-bound':32s} {result.realtime_calls_per_core / max(result.inference_bound_calls_per_core, 1e-9):.2f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(asdict(result), indent=2))
    print(f"wrote {args.json}")
    return 0
