"""Test helpers shared by the integration tests: synthetic calls, a worker subprocess, Redis/metrics readers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from stream.frame import AudioFrame, encode_frame
from stream.localstack import free_port
from workers.audio import encode_mulaw

ROOT = Path(__file__).resolve().parents[1]
SR = 8000


def tone_leg(spans: list[tuple[float, float]], duration_s: float, seed: int = 0, level: float = 0.2) -> np.ndarray:
    """Comfort noise at about -60 dBFS with voiced-like bursts (harmonic tone, syllable-rate envelope) in ``spans``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.001, int(duration_s * SR)).astype(np.float32)
    for a, b in spans:
        a, b = min(a, duration_s), min(b, duration_s)
        n = int((b - a) * SR)
        t = np.arange(n) / SR
        voice = sum(np.sin(2 * np.pi * f0 * t) / (i + 1) for i, f0 in enumerate((140, 280, 420, 560)))
        env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
        x[int(a * SR):int(a * SR) + n] += (level * env * voice / 2).astype(np.float32)
    return x


def frames_for(call_id: str, legs: dict[str, np.ndarray], chunk_s: float = 0.2, t0: float = 1_700_000_000.0) -> list[tuple[str, int, bytes]]:
    """All chunks of a call as (leg, seq, encoded frame), in capture order."""
    n = int(chunk_s * SR)
    out = []
    total = max(len(x) for x in legs.values())
    for seq, i in enumerate(range(0, total, n)):
        for leg, x in legs.items():
            part = x[i:i + n]
            if len(part) >= SR // 50:
                out.append((leg, seq, encode_frame(AudioFrame(call_id, leg, seq, t0 + i / SR, SR, "mulaw", encode_mulaw(part)))))
    return out


class WorkerProcess:
    """A real ``callpulse worker`` in a subprocess, pointed at the test stack."""

    def __init__(self, env: dict[str, str], name: str = "w1", subcommand: str = "worker") -> None:
        self.subcommand = subcommand   # "worker" or "transcriber"
        self.metrics_port = free_port()
        self.env = {**os.environ, **env, "CALLPULSE_WORKER_NAME": name, "PYTHONPATH": str(ROOT)}
        self.proc: subprocess.Popen | None = None
        self.log = open(os.path.join(env.get("CALLPULSE_TEST_LOGDIR", "/tmp"), f"{subcommand}-{name}-{self.metrics_port}.log"), "wb")

    def start(self) -> "WorkerProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.cli", self.subcommand, "--metrics-port", str(self.metrics_port), "--loglevel", "info"],
                                     env=self.env, cwd=str(ROOT), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker exited early with {self.proc.returncode}; see {self.log.name}"
            try:
                self.metrics()
                return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("worker metrics endpoint did not come up")

    def metrics(self, timeout_s: float = 2.0) -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=timeout_s).read().decode()

    def metric(self, name: str, timeout_s: float = 2.0, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics(timeout_s).splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, value = line.rsplit(" ", 1)
            metric_name = head.split("{", 1)[0]
            if metric_name != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}; last value {last!r}")
