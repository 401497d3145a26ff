"""Python's cyclic garbage collector, set for a worker that allocates briskly and keeps a large heap.

The core makes and drops many small objects per message (per-step dictionaries, decoded records), so the young
generation fills every few hundred messages, and every tenth of its collections scans the middle one; a full
collection walks every object the process holds, most of them the modules, models and Kafka client loaded at
start, which never become garbage. Measured in the core alone (``scripts/bench_core.py --no-models``, 400 calls,
timed with ``gc.callbacks``, README "Benchmark", stop 28): the collector took 6.7-7.5 % of the CPU with Python's
defaults and 2.1-2.3 % with the start-up objects frozen and a young generation of 10 000 (3 runs each). The
core's reference cycles are few, so a larger young generation holds little garbage for long; reference counting
frees everything else at once, as before.
"""

from __future__ import annotations

import gc


def tune_gc(gen0_threshold: int) -> bool:
    """Freeze everything allocated so far (``gc.freeze``: full collections skip it) and set the young
    generation's threshold. Call once, after start-up. A no-op (False) with ``gen0_threshold`` 0."""
    if gen0_threshold <= 0:
        return False
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    return True
