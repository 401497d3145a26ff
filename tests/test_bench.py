"""``callpulse bench`` end to end on a tiny configuration, so that the command cannot rot. It runs the real
broker, Redis and worker processes; no timing is asserted (speed is judged by the benchmark, not by tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stream.bench import BenchResult, RunResult
from stream.bench_capacity import DrainResult, capacity_at_own_load, memory_slope
from stream.bench_profile import top_functions
from stream.bench_support import realtime_schedule
from stream.bench_table import print_table

ROOT = Path(__file__).resolve().parents[1]


BACKLOG_CALLS, BACKLOG_S = 24, 10   # small, yet long enough (~0.5 s per drain) for CPU time and py-spy to see it


def test_a_tiny_bench_drains_every_step_and_writes_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "stream.cli", "bench", "--backlog-calls", str(BACKLOG_CALLS), "--backlog-seconds", str(BACKLOG_S),
           "--calls", "2", "--seconds", "3", "--inference-seconds", "0.2", "--profile", "--json", str(out)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    r = json.loads(out.read_text())
    drains = r["drains"]
    assert [(d["workers"], d["calls"]) for d in drains] == [(1, BACKLOG_CALLS), (1, BACKLOG_CALLS // 2), (1, BACKLOG_CALLS * 2),
                                                            (1, BACKLOG_CALLS * 4), (2, BACKLOG_CALLS)]
    for d in drains:
        assert d["complete"] and d["steps_written"] == d["steps_expected"] == d["calls"] * 2 * BACKLOG_S
        assert d["messages"] == d["calls"] * 2 * BACKLOG_S * 2 and d["restored_calls"] == 0 and d["dead_letters"] == 0
        assert d["worker_cpu_s"] > 0 and d["drain_s"] > 0 and d["rss_peak_bytes"] >= d["rss_end_bytes"] > 0
    for key in ("capacity_calls_per_core", "overhead_ms_per_message", "model_ms_per_scored_window", "scaleout_ratio_2_workers",
                "scaleout_efficiency_2_workers",
                "rss_bytes_per_call", "inference_bound_calls_per_core", "p50_latency_ms", "p99_latency_ms"):
        assert r[key] is not None, key
    assert r["runs"][-1]["calls"] == 2 and r["runs"][-1]["written_steps"] == r["runs"][-1]["expected_steps"] == 2 * 2 * 3
    assert 0 < r["runs"][-1]["harness_core_utilisation"] <= 1.05   # producer, broker and Redis did work, on their cores
    assert r["model_ms_per_scored_window"] > 0 and 0 < r["scored_window_share"] < 1 and "capacity_calls_at_own_load" in r
    assert "self %" in run.stdout and "Session.run" in run.stdout   # the profile saw the models run


@pytest.mark.parametrize("busy, noted", [(0.95, True), (0.3, False)])
def test_the_table_says_when_the_real_time_run_measured_a_busy_harness(capsys, busy, noted):
    run = RunResult(100, 10.0, 500, 4000, 2000, 2000, True, 40.0, 120.0, 0.4, 1, 2, 10.0, 0.5, 0.01, busy)
    print_table(BenchResult(runs=[run], p50_latency_ms=40.0, p99_latency_ms=120.0), run)
    out = capsys.readouterr().out
    assert f"harness cores {busy:.0%} busy" in out
    assert ("latency then measures the harness" in out) == noted


def test_memory_slope_is_the_least_squares_slope_of_rss_after_complete_drains():
    def d(calls, peak, complete=True):
        return DrainResult(1, calls, 1.0, 500, 0, 0.0, 0, 0, complete, 1.0, 1.0, 0.0, 0.0, 0.0, 0, 0, 0, peak + 5_000_000, peak, 0, 0)
    assert memory_slope([d(10, 1_000_000), d(20, 2_000_000), d(40, 4_000_000)]) == 100_000
    assert memory_slope([d(10, 1_000_000), d(20, 9_000_000, complete=False)]) is None


def test_capacity_at_own_load_is_where_the_drains_throughput_meets_their_calls():
    def d(calls, per_s, workers=1, complete=True):
        return DrainResult(workers, calls, 30.0, 500, 0, 0.0, 0, 0, complete, 1.0, 1.0, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0, 0, 0,
                           call_seconds_per_s=per_s)
    # 400 calls drain at 762 call-s/s, 800 at 720: t(N) = 762 - 0.105 (N - 400) meets N at 727.6
    assert capacity_at_own_load([d(800, 720.0), d(100, 924.0), d(400, 762.0), d(200, 844.0), d(200, 1500.0, workers=2)]) == 727.6
    assert capacity_at_own_load([d(100, 924.0), d(400, 762.0)]) is None       # every drain kept up: above 400
    assert capacity_at_own_load([d(100, 90.0), d(400, 80.0)]) is None         # none kept up
    assert capacity_at_own_load([d(100, 924.0), d(400, 300.0, complete=False)]) is None


def test_top_functions_counts_own_and_inclusive_samples_per_function(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("main (a/x.py:1);f (b/y.py:5);g (b/y.py:9) 3\nmain (a/x.py:1);f (b/y.py:6) 1\n")
    total, rows = top_functions(raw)
    assert total == 4
    assert rows[0] == ("g (b/y.py)", 3, 3) and ("f (b/y.py)", 1, 4) in rows


def test_cpu_between_two_readings_never_goes_down_when_a_thread_ends():
    from stream.bench_support import sched_delta
    before = {1: (10.0, 1.0), 2: (5.0, 0.5)}
    after = {1: (10.5, 1.25), 3: (0.25, 0.0)}      # thread 2 ended, thread 3 started
    assert sched_delta(before, after) == (0.75, 0.25)


def test_a_real_time_run_sends_every_chunk_once_in_capture_order_with_steps_completing_evenly_over_a_second():
    """The load a live worker sees: 8 calls, 500 ms chunks, 1 s steps. Each call's steps end when its odd chunks
    arrive, so their completion times (mod 1 s) must cover the second evenly, not one half of it."""
    n_calls, n_chunks, t0 = 8, 6, 100.0
    offsets, schedule = realtime_schedule(n_calls, n_chunks, 500, 1.0, t0)
    assert sorted((seq, i) for _, seq, i in schedule) == [(s, i) for s in range(n_chunks) for i in range(n_calls)]
    assert [due for due, _, _ in schedule] == sorted(due for due, _, _ in schedule)
    for due, seq, i in schedule:
        assert due == pytest.approx(t0 + offsets[i] + (seq + 1) * 0.5)   # sent as its last sample is captured
    step_ends = sorted(round((due - t0) % 1.0, 6) for due, seq, _ in schedule if seq % 2 == 1 and seq < 2)
    assert step_ends == pytest.approx([i / n_calls for i in range(n_calls)])
