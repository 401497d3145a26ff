"""The table ``callpulse bench`` prints: each figure, its ratio to the issue's target, and what it measures."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .bench import BenchResult, RunResult

SHARED_CORE_SHARE = 0.1   # a drain whose cores other processes used more than this ran on a shared machine
BUSY_HARNESS_SHARE = 0.8  # a real-time run whose producer, broker and Redis kept their cores busier than this


def print_table(r: "BenchResult", last: "RunResult") -> None:
    def ratio(value, target, higher_is_better=True):
        if value is None:
            return "-"
        return f"{value / target:.2f}x target" if higher_is_better else f"{target / value:.2f}x headroom" if value else "-"
    rows = [
        ("capacity_calls_per_core", r.capacity_calls_per_core, "calls at real time (drain, wall clock)", ratio(r.capacity_calls_per_core, 1000)),
        ("capacity_calls_at_own_load", r.capacity_calls_at_own_load, "live calls where the drains' throughput meets their number",
         ratio(r.capacity_calls_at_own_load, 1000)),
        ("capacity_calls_per_cpu_second", r.capacity_calls_per_cpu_second, "the same per second of worker CPU", ratio(r.capacity_calls_per_cpu_second, 1000)),
        ("capacity_messages_per_s", r.capacity_messages_per_s, "messages drained per second", ""),
        ("overhead_ms_per_message", r.overhead_ms_per_message, "worker CPU outside the models", ratio(r.overhead_ms_per_message, 0.1, False)),
        ("model_ms_per_scored_window", r.model_ms_per_scored_window, f"CPU, models alone; scored share {r.scored_window_share}, "
         f"models {r.model_share_of_worker_cpu} of worker CPU", ""),
        ("capacity_ratio_to_inference_bound", r.capacity_ratio_to_inference_bound,
         f"per CPU-s; bound {r.inference_bound_calls_per_core_workload} calls at this scored share", ratio(r.capacity_ratio_to_inference_bound, 0.7)),
        ("inference_bound_calls_per_core", r.inference_bound_calls_per_core, "models alone, every window speech", ""),
        ("scaleout_ratio_2_workers", r.scaleout_ratio_2_workers, "two workers / one, wall clock", ratio(r.scaleout_ratio_2_workers, 1.8)),
        ("scaleout_efficiency_2_workers", r.scaleout_efficiency_2_workers, "two workers / one, per CPU-second", ratio(r.scaleout_efficiency_2_workers, 0.9)),
        ("rss_bytes_per_call", r.rss_bytes_per_call, "slope of RSS over live calls, once drained", ratio(r.rss_bytes_per_call, 100_000, False)),
        ("realtime_calls_per_core", r.realtime_calls_per_core, "calls of the real-time run, if sustained", ""),
        ("p50_latency_ms", r.p50_latency_ms, f"at {last.calls} calls, real time", ""),
        ("p99_latency_ms", r.p99_latency_ms, f"at {last.calls} calls, real time; harness cores "
         f"{last.harness_core_utilisation:.0%} busy, send lag {last.send_lag_max_s} s", ratio(r.p99_latency_ms, 300, False)),
    ]
    print()
    print(f"{'figure':36s} {'value':>12s}  {'vs target':18s} note")
    for name, value, note, vs in rows:
        print(f"{name:36s} {'-' if value is None else value!s:>12s}  {vs:18s} {note}")
    print(f"machine: {r.machine}")
    shared = [d for d in r.drains if d.drain_s > 0 and d.others_cpu_s > SHARED_CORE_SHARE * d.drain_s * d.workers]
    if shared:
        print(f"NOTE: in {len(shared)} of {len(r.drains)} drains other processes took more than {SHARED_CORE_SHARE:.0%} of "
              "the workers' cores: the wall-clock figures (capacity, scale-out ratio, the real-time run) then measure the "
              "machine's other load; the per-CPU-second figures are the worker's own.")
    if last.harness_core_utilisation > BUSY_HARNESS_SHARE:
        print(f"NOTE: the real-time run's producer, broker and Redis kept their cores {last.harness_core_utilisation:.0%} "
              "busy: its latency then measures the harness as well as the worker.")
