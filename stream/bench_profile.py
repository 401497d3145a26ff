"""``callpulse bench --profile``: where a worker's time goes while it drains the backlog, sampled with py-spy
(every thread, including the core's executor thread, which cProfile in the main thread would not see)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from .bench_support import other_cores, pin

PROFILE_RATE_HZ = 200


class Profiler:
    """py-spy sampling one worker (all threads; py-spy leaves out idle ones), on the cores the workers do not use."""

    def __init__(self, pid: int, out: Path, avoid: set[int]) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(exe).exists():
            raise RuntimeError("--profile needs py-spy (pip install 'callpulse[bench]')")
        self.out = out
        self.proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--format", "raw", "--rate", str(PROFILE_RATE_HZ),
                                      "--nonblocking", "--output", str(out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pin(self.proc.pid, other_cores(avoid))

    def stop(self) -> Path:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.out



def top_functions(raw: Path, n: int = 25) -> tuple[int, list[tuple[str, int, int]]]:
    """From py-spy's raw output (``frame;frame;... count`` per line): samples, and the top ``n`` functions as
    (function (file:line of its definition dropped), self samples, inclusive samples), by self samples."""
    own: Counter = Counter()
    incl: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_function(f) for f in stack.split(";")]
        k = int(count)
        total += k
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    return total, [(f, c, incl[f]) for f, c in own.most_common(n)]


def _function(frame: str) -> str:
    """'name (path/to/file.py:123)' -> 'name (file.py)': one entry per function, not per line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{name} ({short})"


def print_top(raw: Path, n: int = 25, log=print) -> None:
    total, rows = top_functions(raw, n)
    if not total:
        log("profile: no samples")
        return
    log(f"profile of the first worker while it drained the backlog ({total} samples at {PROFILE_RATE_HZ} Hz, all threads, "
        "samples of idle threads excluded by py-spy):")
    log(f"  {'self %':>7s} {'total %':>8s}  function")
    for f, own, incl in rows:
        log(f"  {100 * own / total:7.1f} {100 * incl / total:8.1f}  {f}")
