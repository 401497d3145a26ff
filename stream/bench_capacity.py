"""Capacity: a backlog of N calls x S seconds is produced into the topics first; then worker processes, each
pinned to its own core, drain it with nothing else producing. The clock runs from the first chunk a worker
accepts to the last step written to Redis, so the figures are the workers' and not the load generator's.

From one drain: messages and call-seconds per second, calls per core at real time (a call is one
call-second per second), the worker's CPU split into models and everything else, and its peak RSS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from . import topics
from .bench_profile import Profiler
from .bench_support import (
    SR, WorkerUnderTest, cores_busy_seconds, counter, encoded_calls, frame_header, histogram, other_cores, pin, rss_bytes, sched_delta,
    sched_seconds,
)
from .frame import LEGS
from .localstack import LocalStack
from .producer import CallProducer

POLL_S = 0.05                   # near the end of a drain; scraping costs the worker CPU, so poll slowly before
POLL_SLOW_S = 0.5
DRAIN_TIMEOUT_S = 600.0
FIRST_CHUNK_TIMEOUT_S = 90.0
# Two workers must join the group in one generation, or the drain would include a rebalance: a long session
# timeout makes the broker wait for both before the first assignment.
SCALEOUT_SESSION_TIMEOUT_S = 20.0
# A worker catching up on a backlog may fetch a partition's audio long before the start events on the other topic
# (seen here under load: 3 of 200 calls' audio dead-lettered as unknown_call after the default 10 s grace). The
# benchmark measures throughput, so its workers wait as long as a drain may take.
BACKLOG_START_GRACE_S = 600.0
STALL_S = 30.0                  # no step written for this long: the drain is reported incomplete


@dataclass
class DrainResult:
    workers: int
    calls: int
    seconds: float
    chunk_ms: int
    messages: int
    call_seconds: float
    steps_expected: int
    steps_written: int
    complete: bool
    drain_s: float
    worker_cpu_s: float                  # all workers together
    worker_wait_s: float                 # runnable but waiting for a core (its own threads or other processes held it)
    others_cpu_s: float                  # CPU time other processes took on the workers' cores during the drain
    model_s: float                       # inside the batched model calls, wall clock (the worker's histogram)
    scored_windows: int
    windows: int
    rss_idle_bytes: int                  # first worker, at its first chunk of the backlog
    rss_peak_bytes: int                  # first worker, VmHWM at the end
    rss_end_bytes: int                   # first worker, VmRSS once every step is written: all N calls live, no backlog
    restored_calls: int                  # > 0 means a rebalance moved calls during the drain
    dead_letters: int                    # > 0: the backlog was not all accepted (reason in the worker's metrics)
    messages_per_s: float = 0.0
    call_seconds_per_s: float = 0.0      # = calls sustained at real time by these workers
    call_seconds_per_cpu_s: float = 0.0  # the same per second of worker CPU (robust to a shared machine)
    cpu_utilisation: float = 0.0         # worker CPU / (drain time x workers)
    model_wall_ms_per_scored_window: float = 0.0
    cpu_ms_per_message: float = 0.0      # worker CPU / messages, models included

    def finish(self) -> "DrainResult":
        if self.drain_s > 0:
            self.messages_per_s = round(self.messages / self.drain_s, 1)
            self.call_seconds_per_s = round(self.call_seconds / self.drain_s, 1)
            self.cpu_utilisation = round(self.worker_cpu_s / (self.drain_s * self.workers), 3)
        if self.worker_cpu_s > 0:
            self.call_seconds_per_cpu_s = round(self.call_seconds / self.worker_cpu_s, 1)
        if self.scored_windows:
            self.model_wall_ms_per_scored_window = round(1000 * self.model_s / self.scored_windows, 4)
        if self.messages:
            self.cpu_ms_per_message = round(1000 * self.worker_cpu_s / self.messages, 4)
        return self


def produce_backlog(stack: LocalStack, calls: int, seconds: float, chunk_ms: int, tag: str) -> tuple[int, int]:
    """Start events, then every chunk of every call (in capture order), as if the calls had just happened.
    Returns (audio messages, steps the worker must write: one per leg and second)."""
    chunk = SR * chunk_ms // 1000
    audio = encoded_calls(seconds, chunk_ms)
    n_chunks = int(seconds * 1000 // chunk_ms)
    t0 = time.time() - seconds - 5
    ids = [f"bench-{tag}-{i}".encode() for i in range(calls)]
    with CallProducer(stack.bootstrap_servers, linger_ms=20, batch_size=512 * 1024,
                      max_request_size=8 * 1024 * 1024) as producer:
        for i, cid in enumerate(ids):
            producer.start_call(cid.decode(), ts=t0, queue=f"q{i % 4}", campaign=f"c{i % 2}", agent_id=f"a{i % 50}")
        producer.flush()
        kp = producer.producer
        messages = 0
        for seq in range(n_chunks):
            for i, cid in enumerate(ids):
                base = audio[i % len(audio)]
                capture = t0 + seq * chunk_ms / 1000
                for leg_i, leg in enumerate(LEGS):
                    kp.send(topics.AUDIO, key=cid, value=frame_header(cid, leg_i, seq, capture, chunk) + base[leg][seq])
                    messages += 1
        producer.flush(120)
    return messages, calls * len(LEGS) * int(n_chunks * chunk_ms / 1000)


def drain(calls: int, seconds: float, chunk_ms: int, workers: int = 1, tag: str = "cap", profile: Path | None = None,
          log=print, transcriber_core: int | None = None) -> DrainResult:
    """Produce a backlog into a fresh broker and Redis, then time ``workers`` workers (cores 0, 1, ...) draining it;
    with ``transcriber_core``, a ``callpulse transcriber`` pinned there reads the same backlog meanwhile."""
    with LocalStack() as stack:
        messages, expected = produce_backlog(stack, calls, seconds, chunk_ms, tag)
        cores = set(range(workers))
        for pid in stack.server_pids():   # broker and Redis stay off the workers' cores where the machine has more
            pin(pid, other_cores(cores))
        env = {"CALLPULSE_START_GRACE_S": str(BACKLOG_START_GRACE_S)}
        if workers > 1:
            env["CALLPULSE_BROKER_SESSION_TIMEOUT_S"] = str(SCALEOUT_SESSION_TIMEOUT_S)
        procs = [WorkerUnderTest(stack, core=c, env=env) for c in range(workers)]
        profiler = tier = None
        try:
            if transcriber_core is not None:
                from .bench_transcribe import start_transcriber   # the transcriber needs the 'transcribe' extra
                tier = start_transcriber(stack, core=transcriber_core)
            for w in procs:
                w.wait_ready()
            if profile is not None:   # attached now, while the group join still holds the backlog back
                profiler = Profiler(procs[0].pid, profile, cores)
            start = _wait_first_chunk(procs)
            rss_idle = rss_bytes(procs[0].pid)   # models loaded, group joined, the backlog barely started
            # CPU spent before the first chunk (model load, group join) is not drain work
            before, busy_before = [sched_seconds(w.pid) for w in procs], cores_busy_seconds(cores)
            texts, end = _wait_steps(procs, expected, start)
            drain_s = end - start
            after, busy_after = [sched_seconds(w.pid) for w in procs], cores_busy_seconds(cores)
            deltas = [sched_delta(b, a) for b, a in zip(before, after)]
            cpu, wait = sum(d[0] for d in deltas), sum(d[1] for d in deltas)
            others = max(0.0, busy_after - busy_before - cpu)
            peak = rss_bytes(procs[0].pid, "VmHWM")
            rss_end = rss_bytes(procs[0].pid)
        finally:
            if profiler is not None:
                profiler.stop()
            if tier is not None:
                tier.stop()
            for w in procs:
                w.stop()
    written = int(sum(counter(t, "callpulse_end_to_end_latency_seconds_count") for t in texts))
    model_s = sum(histogram(t, "callpulse_inference_seconds")[1] for t in texts)
    scored = int(sum(counter(t, "callpulse_windows_total", speech="true") for t in texts))
    windows = int(sum(counter(t, "callpulse_windows_total") for t in texts))
    restored = int(sum(counter(t, "callpulse_calls_restored_total") for t in texts))
    dead = int(sum(counter(t, "callpulse_dead_letters_total") for t in texts))
    r = DrainResult(workers, calls, seconds, chunk_ms, messages, calls * seconds, expected, written, written >= expected,
                    round(drain_s, 3), round(cpu, 3), round(wait, 3), round(others, 3), round(model_s, 3), scored, windows, rss_idle, peak,
                    rss_end, restored, dead).finish()
    log(f"  drain {workers} worker(s), {calls} calls x {seconds:g} s: {messages} messages in {r.drain_s:.2f} s -> "
        f"{r.call_seconds_per_s:.0f} call-s/s ({r.call_seconds_per_cpu_s:.0f} per CPU-s), worker cpu {r.cpu_utilisation:.0%}, "
        f"waited for a core {wait:.2f} s (others used it {others:.2f} s), {r.cpu_ms_per_message:.3f} CPU ms/msg, RSS {rss_end / 1e6:.0f} MB (peak {peak / 1e6:.0f})"
        + ("" if r.complete else f"  INCOMPLETE ({written}/{expected} steps)") + (f"  ({restored} calls restored)" if restored else "") + (f"  ({dead} dead letters)" if dead else ""))
    return r


def _wait_first_chunk(procs: list[WorkerUnderTest]) -> float:
    deadline = time.monotonic() + FIRST_CHUNK_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(counter(w.metrics(), "callpulse_chunks_total") > 0 for w in procs):
            return time.monotonic()
        time.sleep(POLL_S / 2)
    raise RuntimeError("no worker accepted a chunk of the backlog")


def _wait_steps(procs: list[WorkerUnderTest], expected: int, start: float) -> tuple[list[str], float]:
    """Poll until every step is written (or no progress for ``STALL_S``, or the timeout); returns the last scrapes
    and the time they saw it."""
    last, progressed = -1.0, start
    while True:
        texts = [w.metrics() for w in procs]
        now = time.monotonic()
        written = sum(counter(t, "callpulse_end_to_end_latency_seconds_count") for t in texts)
        if written > last:
            last, progressed = written, now
        if (written >= expected or now - start > DRAIN_TIMEOUT_S or now - progressed > STALL_S
                or any(w.proc.poll() is not None for w in procs)):
            return texts, now
        time.sleep(POLL_S if written >= 0.9 * expected else POLL_SLOW_S)


def memory_slope(points: list[DrainResult]) -> float | None:
    """Least-squares slope of RSS over live calls (bytes per call): what each further call costs. RSS is read when
    a drain has written every step, not at its peak: the peak also holds what a backlog brings at once (batches in
    flight, chunks read ahead of their call's start event waiting as orphans) and was seen to grow faster than
    the number of calls (150 -> 300 calls: +110 MB)."""
    pts = [(p.calls, p.rss_end_bytes) for p in points if p.complete and p.workers == 1]
    if len({c for c, _ in pts}) < 2:
        return None
    n = len(pts)
    mx = sum(c for c, _ in pts) / n
    my = sum(r for _, r in pts) / n
    return round(sum((c - mx) * (r - my) for c, r in pts) / sum((c - mx) ** 2 for c, _ in pts), 1)


def capacity_at_own_load(points: list[DrainResult]) -> float | None:
    """The most live calls one worker carries at real time, given that its cost per message grows with the number
    of live calls (in the bench's drains, more call hashes are rendered and written per message): the
    N at which the call-seconds drained per second, interpolated linearly between single-worker drains of
    different sizes, fall to N. None when no drain fell below its own number of calls, or the first already did."""
    pts = sorted({p.calls: p.call_seconds_per_s for p in points if p.complete and p.workers == 1}.items())
    for (n0, t0), (n1, t1) in zip(pts, pts[1:]):
        if t0 >= n0 and t1 < n1:
            slope = (t1 - t0) / (n1 - n0)   # t(N) = t0 + slope (N - n0); solve t(N) = N
            return round((t0 - slope * n0) / (1 - slope), 1)
    return None
