"""``callpulse bench``: what one worker core carries, measured on the worker and not on its harness.

- Capacity (``stream.bench_capacity``): a backlog of N calls x S seconds is produced first, then one worker
  pinned to one core drains it alone: messages/s, call-seconds/s (= calls at real time per core), its CPU split
  into the models and the rest (overhead per message), peak RSS. Two workers on two cores give the scale-out ratio.
- Memory per live call: the slope of peak RSS over N, from drains of several sizes.
- Latency: N concurrent calls at real-time pace (default: half the measured capacity) through the real broker,
  the pinned worker and Redis; p50/p99 from a step's last captured sample to its Redis write.
- The models alone, batched, on one core (the inference bound).
``--saturate`` instead searches the most calls sustained at real-time pace (the earlier method, which also
measures the load generator). Writes the result as JSON; ``--profile`` prints the worker's top functions.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import topics
from .bench_capacity import DrainResult, capacity_at_own_load, drain, memory_slope
from .bench_table import print_table
from .bench_support import (
    SR, WorkerUnderTest, counter, cpu_seconds, encoded_calls, frame_header, histogram, other_cores, pin, quantile,
    realtime_schedule, rss_bytes,
)
from .frame import LEGS
from .localstack import LocalStack
from .producer import CallProducer
from .settings import Settings

WORKER_CORE = 0
DRAIN_TIMEOUT_S = 10.0
SUSTAINED_P99_S = 1.0          # a real-time run "keeps up" when every step is written and p99 stays under this
WARMUP_S = 4.0
MEMORY_FRACTIONS = (0.5, 2.0, 4.0)  # more drains, these multiples of the calls: the RSS slope needs 8x (RSS varies +-20 MB)
STEP_HOP_S = Settings().hop_s   # the worker's step (the workers under test run with the default settings)


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
    harness_core_utilisation: float = 0.0   # producer + broker + Redis CPU over the cores they share, per wall second


@dataclass
class BenchResult:
    runs: list[RunResult] = field(default_factory=list)
    realtime_calls_per_core: int = 0
    p50_latency_ms: float | None = None
    p99_latency_ms: float | None = None
    rss_bytes_per_call: float | None = None           # slope of RSS over live calls (drains, RSS once drained); else (peak - idle) / calls
    rss_marginal_bytes_per_call: float | None = None  # slope of peak RSS over calls between sustained real-time runs (--saturate)
    inference_bound_calls_per_core: float = 0.0       # models alone, if every window of both legs were speech
    inference_ms_per_window_batched: float = 0.0
    inference_ms_per_window_single: float = 0.0
    # the worker alone, draining a backlog on one core
    capacity_calls_per_core: float | None = None      # call-seconds drained per second of wall time
    capacity_calls_at_own_load: float | None = None   # where the drains' throughput (0.5x-4x the calls) meets their calls
    capacity_calls_per_cpu_second: float | None = None
    capacity_messages_per_s: float | None = None
    overhead_ms_per_message: float | None = None      # (worker CPU - models' CPU) / messages
    model_ms_per_scored_window: float | None = None   # CPU ms per window (both scores), the models alone, batched
    model_share_of_worker_cpu: float | None = None
    scored_window_share: float | None = None
    inference_bound_calls_per_core_workload: float | None = None   # models alone at this workload's scored share
    capacity_ratio_to_inference_bound: float | None = None
    scaleout_ratio_2_workers: float | None = None     # call-seconds drained per wall second, two workers / one
    # per worker CPU-second: 1.0 = a second worker on its own core adds a whole one (the wall ratio needs idle cores)
    scaleout_efficiency_2_workers: float | None = None
    drains: list[DrainResult] = field(default_factory=list)
    machine: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)        # the version and profile (CALLPULSE_MODEL_PROFILE) measured


def run_load(stack: LocalStack, n_calls: int, seconds: float, chunk_ms: int, tag: str, log=print) -> RunResult:
    """N calls at real-time pace (call starts spread over a hop) into a running worker; latency from its histogram."""
    servers = stack.server_pids()
    for pid in servers:
        pin(pid, other_cores({WORKER_CORE}))
    worker = WorkerUnderTest(stack, core=WORKER_CORE)
    producer = None
    try:
        worker.wait_ready()
        chunk = SR * chunk_ms // 1000
        encoded = encoded_calls(seconds, chunk_ms)
        n_chunks = int(seconds * 1000 // chunk_ms)
        producer = CallProducer(stack.bootstrap_servers, linger_ms=2, batch_size=256 * 1024, max_request_size=8 * 1024 * 1024)
        kp = producer.producer
        ids = [f"bench-{tag}-{i}".encode() for i in range(n_calls)]
        # warm-up: let the group join and the models warm before the clock starts
        producer.start_call(f"bench-{tag}-warm", ts=time.time())
        producer.flush()
        time.sleep(WARMUP_S)
        rss_idle = rss_bytes(worker.pid)
        before = worker.metrics()
        b_hist, _ = histogram(before, "callpulse_end_to_end_latency_seconds")
        b_written = counter(before, "callpulse_end_to_end_latency_seconds_count")
        b_scored = counter(before, "callpulse_windows_total", speech="true")
        b_all = counter(before, "callpulse_windows_total")
        t0 = time.time() + 1.0
        for i, cid in enumerate(ids):
            producer.start_call(cid.decode(), ts=t0, queue=f"q{i % 4}", campaign=f"c{i % 2}", agent_id=f"a{i % 50}")
        producer.flush()
        harness = [os.getpid(), *servers]
        cpu0, wall0, harness_cpu0 = cpu_seconds(worker.pid), time.time(), sum(map(cpu_seconds, harness))
        rss_peak, send_lag, messages = rss_idle, 0.0, 0
        offsets, schedule = realtime_schedule(n_calls, n_chunks, chunk_ms, STEP_HOP_S, t0)
        for sent, (due, seq, i) in enumerate(schedule):
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            else:
                send_lag = max(send_lag, -wait)
            cid, base = ids[i], encoded[i % len(encoded)]
            capture = t0 + seq * chunk_ms / 1000 + offsets[i]
            for leg_i, leg in enumerate(LEGS):
                kp.send(topics.AUDIO, key=cid, value=frame_header(cid, leg_i, seq, capture, chunk) + base[leg][seq])
                messages += 1
            if sent % (4 * n_calls) == 4 * n_calls - 1:
                rss_peak = max(rss_peak, rss_bytes(worker.pid))
        producer.flush()
        expected = n_calls * 2 * int(n_chunks * chunk_ms / 1000)
        deadline = time.time() + DRAIN_TIMEOUT_S
        while True:
            text = worker.metrics()
            written = counter(text, "callpulse_end_to_end_latency_seconds_count") - b_written
            if written >= expected or time.time() > deadline:
                break
            time.sleep(0.25)
        wall = time.time() - wall0
        cpu = cpu_seconds(worker.pid) - cpu0
        harness_busy = (sum(map(cpu_seconds, harness)) - harness_cpu0) / wall / len(other_cores({WORKER_CORE}))
        rss_peak = max(rss_peak, rss_bytes(worker.pid))
        a_hist, _ = histogram(text, "callpulse_end_to_end_latency_seconds")
        p50, p99 = quantile(b_hist, 0.5, a_hist), quantile(b_hist, 0.99, a_hist)
        scored = counter(text, "callpulse_windows_total", speech="true") - b_scored
        every = counter(text, "callpulse_windows_total") - b_all
        sustained = written >= expected and p99 is not None and p99 < SUSTAINED_P99_S and send_lag < 0.5
        r = RunResult(n_calls, seconds, chunk_ms, messages, expected, int(written), sustained,
                      None if p50 is None else round(p50 * 1000, 1), None if p99 is None else round(p99 * 1000, 1),
                      round(cpu / wall, 3), rss_idle, rss_peak, round((rss_peak - rss_idle) / max(n_calls, 1), 1),
                      round(scored / every, 3) if every else 0.0, round(send_lag, 3), round(harness_busy, 3))
        log(f"  real time, {n_calls:5d} calls: steps {int(written)}/{expected}  p50 {r.p50_latency_ms} ms  p99 {r.p99_latency_ms} ms  "
            f"worker cpu {r.worker_cpu_utilisation:.0%}  harness cores {harness_busy:.0%}  rss/call {r.rss_bytes_per_call / 1000:.1f} kB  "
            f"{'sustained' if sustained else 'NOT sustained'}")
        return r
    finally:
        if producer is not None:
            producer.close()
        worker.stop()


def inference_bound(seconds: float = 5.0, batch: int = 64) -> tuple[float, float, float, float, str]:
    """The models alone on one core: windows per second (batched), ms per window batched and single (wall clock),
    CPU ms per window batched (what the models cost when other processes share the core), and their version."""
    from workers.inference import Models
    if os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {WORKER_CORE})
    try:
        models = Models.for_settings(Settings(onnx_threads=1))
        rng = np.random.default_rng(0)
        windows = (rng.normal(0, 0.1, (batch, 2 * SR))).astype(np.float32)
        models.predict(windows)
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            models.predict(windows)
            n += batch
        batched, batched_cpu = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
        single_n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2:
            models.predict(windows[:1])
            single_n += 1
        single = (time.perf_counter() - t0) / single_n
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return 1.0 / batched, batched * 1000, single * 1000, batched_cpu * 1000, models.emotion.info.version


def _capacity(args, result: BenchResult) -> None:
    profile = Path(tempfile.mkdtemp(prefix="callpulse-profile-")) / "worker.txt" if args.profile else None
    print(f"capacity: one worker on core {WORKER_CORE} draining {args.backlog_calls} calls x {args.backlog_seconds:g} s:")
    main = drain(args.backlog_calls, args.backlog_seconds, args.chunk_ms, 1, "cap", profile)
    result.drains.append(main)
    for fraction in MEMORY_FRACTIONS:
        n = max(int(args.backlog_calls * fraction), 1)
        if n != args.backlog_calls:
            result.drains.append(drain(n, args.backlog_seconds, args.chunk_ms, 1, f"mem{n}"))
    if not args.no_scaleout and (os.cpu_count() or 1) >= 2:
        print("scale-out: two workers, one per core, draining the same backlog:")
        two = drain(args.backlog_calls, args.backlog_seconds, args.chunk_ms, 2, "two")
        result.drains.append(two)
        if main.complete and two.complete and main.call_seconds_per_s:
            result.scaleout_ratio_2_workers = round(two.call_seconds_per_s / main.call_seconds_per_s, 2)
        if main.complete and two.complete and main.call_seconds_per_cpu_s:
            result.scaleout_efficiency_2_workers = round(two.call_seconds_per_cpu_s / main.call_seconds_per_cpu_s, 2)
    if main.complete:
        result.capacity_calls_per_core = main.call_seconds_per_s
        result.capacity_calls_per_cpu_second = main.call_seconds_per_cpu_s
        result.capacity_messages_per_s = main.messages_per_s
        # the models' CPU per window comes from the models alone (CPU time, robust to a shared core); the worker's
        # own histogram times them by the wall clock, which counts the time other processes held the core
        model_cpu_s = main.scored_windows * result.model_ms_per_scored_window / 1000
        result.overhead_ms_per_message = round(1000 * (main.worker_cpu_s - model_cpu_s) / max(main.messages, 1), 4)
        result.model_share_of_worker_cpu = round(model_cpu_s / max(main.worker_cpu_s, 1e-9), 3)
        result.scored_window_share = round(main.scored_windows / max(main.windows, 1), 3)
        # one call at real time = 2 legs x 1 window per second, of which this share is scored
        per_call_s = 2 * result.scored_window_share * result.model_ms_per_scored_window / 1000
        if per_call_s > 0:
            result.inference_bound_calls_per_core_workload = round(1 / per_call_s, 1)
            result.capacity_ratio_to_inference_bound = round(main.call_seconds_per_cpu_s * per_call_s, 3)
    result.rss_bytes_per_call, result.capacity_calls_at_own_load = memory_slope(result.drains), capacity_at_own_load(result.drains)
    if profile is not None and profile.exists():
        from .bench_profile import print_top
        print_top(profile)


def _saturate(args, result: BenchResult) -> None:
    def measure(n: int, tag: str) -> RunResult:
        with LocalStack(broker=args.broker) as stack:
            return run_load(stack, n, args.seconds, args.chunk_ms, tag)

    lo, hi, n = 0, None, max(args.calls or 0, 50)
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
    ok = sorted((r for r in result.runs if r.sustained), key=lambda r: r.calls)
    if len(ok) >= 2 and ok[-1].calls > ok[0].calls:
        result.rss_marginal_bytes_per_call = round((ok[-1].rss_peak_bytes - ok[0].rss_peak_bytes) / (ok[-1].calls - ok[0].calls), 1)


def run_bench(args) -> int:
    if getattr(args, "transcribe", False) and getattr(args, "tier_ab", False):   # stream/bench_tier.py
        from .bench_tier import run_tier_ab
        return run_tier_ab(args)
    if getattr(args, "transcribe", False):   # the transcription tier's own figures (stream/bench_transcribe.py)
        from .bench_transcribe import run_transcribe_bench
        return run_transcribe_bench(args)
    result = BenchResult(machine={"cpus": os.cpu_count(), "python": sys.version.split()[0], "worker_core": WORKER_CORE, "load_average_1m": round(os.getloadavg()[0], 2)})
    windows_per_s, ms_batched, ms_single, cpu_ms, version = inference_bound(args.inference_seconds)
    s = Settings()   # the workers under test inherit this environment, so they load the same models
    result.models = {"model_version": version, "model_profile": s.model_profile, "model_dir": s.model_dir}
    result.model_ms_per_scored_window = round(cpu_ms, 4)
    # one call at real time = 2 legs x 1 window per hop (1 s), when both legs speak all the time
    result.inference_bound_calls_per_core = round(windows_per_s / 2, 1)
    result.inference_ms_per_window_batched, result.inference_ms_per_window_single = round(ms_batched, 3), round(ms_single, 3)
    print(f"models {version} alone: {ms_batched:.3f} ms/window batched ({cpu_ms:.3f} ms of CPU), {ms_single:.3f} ms/window "
          f"single -> {result.inference_bound_calls_per_core:.0f} calls/core if every window is speech")
    if args.saturate:
        _saturate(args, result)
    else:
        _capacity(args, result)
        calls = args.calls or max(int((result.capacity_calls_per_core or 0) // 2), 1)
        print(f"latency at real time, {calls} calls" + ("" if args.calls else " (half the capacity)") + ":")
        with LocalStack(broker=args.broker) as stack:   # a fresh broker and Redis: nothing earlier may leak in
            result.runs.append(run_load(stack, calls, args.seconds, args.chunk_ms, "rt"))
        result.realtime_calls_per_core = calls if result.runs[-1].sustained else 0
    last = result.runs[-1]
    result.p50_latency_ms, result.p99_latency_ms = last.p50_latency_ms, last.p99_latency_ms
    if result.rss_bytes_per_call is None:
        ok = [r.rss_bytes_per_call for r in result.runs if r.sustained]
        result.rss_bytes_per_call = max(ok) if ok else None
    result.machine["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    print_table(result, last)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(asdict(result), indent=2))
    print(f"wrote {args.json}")
    return 0
