"""``callpulse bench --transcribe --tier-ab``: the emotion worker's capacity with and without the transcription
tier reading the same stream (issue 15: "the emotion workers' throughput is unchanged whether the tier runs").

Drains of the same backlog alternate: the worker alone on core 0, then the worker on core 0 while a
``callpulse transcriber`` pinned to core 1 reads the same backlog in its own consumer group. On a 2-core machine
core 1 also carries the broker and Redis, so the "with" drains measure the tier's pressure on the worker's
broker and Redis as well; in production the tier runs on machines of its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median

from .bench_capacity import DrainResult, drain

TIER_CORE = 1
REPEATS = 2


@dataclass
class TierAB:
    calls: int
    seconds: float
    without: list[DrainResult] = field(default_factory=list)
    with_tier: list[DrainResult] = field(default_factory=list)
    capacity_without: float = 0.0              # call-seconds per second, median
    capacity_with: float = 0.0
    capacity_ratio_with_tier: float = 0.0      # with / without, wall clock
    cpu_capacity_ratio_with_tier: float = 0.0  # the same per second of worker CPU


def run_tier_ab(args) -> int:
    calls, seconds = args.backlog_calls, args.backlog_seconds
    res = TierAB(calls, seconds)
    print(f"the emotion worker draining {calls} calls x {seconds:g} s, alone and with a transcriber on core {TIER_CORE}:")
    for i in range(REPEATS):
        res.without.append(drain(calls, seconds, args.chunk_ms, tag=f"ab-off-{i}"))
        res.with_tier.append(drain(calls, seconds, args.chunk_ms, tag=f"ab-on-{i}", transcriber_core=TIER_CORE))
    res.capacity_without = median(d.call_seconds_per_s for d in res.without)
    res.capacity_with = median(d.call_seconds_per_s for d in res.with_tier)
    res.capacity_ratio_with_tier = round(res.capacity_with / res.capacity_without, 3)
    res.cpu_capacity_ratio_with_tier = round(median(d.call_seconds_per_cpu_s for d in res.with_tier)
                                             / median(d.call_seconds_per_cpu_s for d in res.without), 3)
    print(f"\n{'capacity without / with the tier':34s} {res.capacity_without} / {res.capacity_with} call-s/s "
          f"(ratio {res.capacity_ratio_with_tier}; per worker CPU-second {res.cpu_capacity_ratio_with_tier})")
    out = Path(args.json).with_name(Path(args.json).stem + "-tier-ab.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(res), indent=2))
    print(f"wrote {out}")
    return 0
