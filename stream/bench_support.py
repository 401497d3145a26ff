"""What every part of ``callpulse bench`` shares: the synthetic calls, the worker process under test, and
readers of its /proc figures and its Prometheus endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from .frame import HEADER, LEGS, MAGIC, VERSION
from .localstack import LocalStack, free_port

SR = 8000
MULAW = 1                       # the frame's encoding code for G.711 u-law
WORKER_START_TIMEOUT_S = 60.0
TRANSCRIBER_START_TIMEOUT_S = 90.0   # it checks and loads Whisper-base first
DISTINCT_CALL_AUDIO = 8         # calls cycle through this many synthetic conversations


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


def encoded_calls(seconds: float, chunk_ms: int) -> list[dict[str, list[bytes]]]:
    """``DISTINCT_CALL_AUDIO`` conversations as u-law payloads, one list of chunks per leg."""
    from workers.audio import encode_mulaw
    chunk = SR * chunk_ms // 1000
    out = []
    for seed in range(DISTINCT_CALL_AUDIO):
        legs = speech_like_call(seconds + 2, seed)
        out.append({leg: [encode_mulaw(np.clip(x[i:i + chunk], -1.0, 32767 / 32768))
                          for i in range(0, len(x) - chunk + 1, chunk)] for leg, x in legs.items()})
    return out


def realtime_schedule(n_calls: int, n_chunks: int, chunk_ms: int, hop_s: float,
                      t0: float) -> tuple[list[float], list[tuple[float, int, int]]]:
    """Each call's start offset, and every (send time, chunk seq, call index) of a real-time run in send order: a
    chunk goes out as its last sample is captured. Call starts are spread over a hop, not only over a chunk
    period: as with real calls, which start at random times, steps (one per hop per leg) then complete evenly over
    each second; spread over a 500 ms chunk period, all of them completed in the same half second, in bursts."""
    spread_s = max(chunk_ms / 1000, hop_s)
    offsets = [(i / max(n_calls, 1)) * spread_s for i in range(n_calls)]
    return offsets, sorted((t0 + (seq + 1) * chunk_ms / 1000 + offsets[i], seq, i)
                           for seq in range(n_chunks) for i in range(n_calls))


def frame_header(call_id: bytes, leg: int, seq: int, ts: float, n: int) -> bytes:
    """The 24-byte frame header plus the call id of a u-law chunk (the payload follows)."""
    return HEADER.pack(MAGIC, VERSION, leg, MULAW, len(call_id), SR, seq, round(ts * 1e6), n) + call_id


# -- /proc -------------------------------------------------------------------------------------------
def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process; ``VmHWM`` is its peak since it started."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cores_busy_seconds(cores: set[int]) -> float:
    """CPU time the given cores spent busy (any process), from /proc/stat: with the workers' own CPU subtracted,
    what other processes took from the workers' cores."""
    busy = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in values[:8])
            busy += user + nice + system + irq + softirq + steal
    return busy / os.sysconf("SC_CLK_TCK")


def sched_seconds(pid: int) -> dict[int, tuple[float, float]]:
    """Per thread: (time on a CPU, time runnable but waiting for one), in ns resolution, from schedstat. The second
    counts the worker's own threads waiting for each other on its pinned core too, so it is not zero when the
    machine is quiet; ``cores_busy_seconds`` tells what other processes took."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
            out[int(task.name)] = (int(fields[0]) / 1e9, int(fields[1]) / 1e9)
        except (OSError, IndexError, ValueError):
            continue   # a thread that ended meanwhile
    return out


def sched_delta(before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]]) -> tuple[float, float]:
    """(CPU, waiting) between two ``sched_seconds`` readings, over the threads alive at the second (a thread that
    ended in between takes its time with it: a sum over all threads could even go down)."""
    run = sum(r - before.get(tid, (0.0, 0.0))[0] for tid, (r, _) in after.items())
    wait = sum(w - before.get(tid, (0.0, 0.0))[1] for tid, (_, w) in after.items())
    return run, wait


def pin(pid: int, cores: set[int]) -> None:
    """Pin a process and every thread it has now to ``cores`` (no-op on a one-core machine)."""
    if (os.cpu_count() or 1) < 2:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), cores)
        except OSError:
            continue


def other_cores(cores: set[int]) -> set[int]:
    rest = set(range(os.cpu_count() or 1)) - cores
    return rest or set(range(os.cpu_count() or 1))


# -- Prometheus text ------------------------------------------------------------------------------
def scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def histogram(text: str, name: str) -> tuple[list[tuple[float, float]], float]:
    """Cumulative buckets [(le, count)] and the sum of one (unlabelled or summed-over-labels) histogram."""
    buckets: dict[float, float] = {}
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            key = float("inf") if le == "+Inf" else float(le)
            buckets[key] = buckets.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum"):
            total += float(line.rsplit(" ", 1)[1])
    return sorted(buckets.items()), total


def counter(text: str, name: str, **labels: str) -> float:
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


# -- the worker process -----------------------------------------------------------------------------
class WorkerUnderTest:
    """``callpulse worker`` (or ``transcriber``) in its own process, pinned to ``core``, with its metrics endpoint
    on a free port."""

    def __init__(self, stack: LocalStack, core: int = 0, env: dict[str, str] | None = None, subcommand: str = "worker") -> None:
        self.port = free_port()
        self.core = core
        self.subcommand = subcommand
        full_env = {**os.environ, "CALLPULSE_BOOTSTRAP_SERVERS": stack.bootstrap_servers, "CALLPULSE_REDIS_URL": stack.redis_url,
                    "CALLPULSE_INACTIVITY_TIMEOUT_S": "600", "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                    "CALLPULSE_WORKER_NAME": f"bench-{core}-{self.port}", **(env or {})}
        cores = {core % (os.cpu_count() or 1)}
        preexec = (lambda: os.sched_setaffinity(0, cores)) if (os.cpu_count() or 1) > 1 else None
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.cli", subcommand, "--metrics-port", str(self.port)],
                                     env=full_env, preexec_fn=preexec, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def wait_ready(self, timeout_s: float = WORKER_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                scrape(self.port)
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"the {self.subcommand} did not start (exit code {self.proc.poll()})")
                time.sleep(0.1)

    def metrics(self) -> str:
        return scrape(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
