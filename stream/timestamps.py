"""The window of event and capture times a worker accepts (both topics share it).

A time must be finite and lie between ``EARLIEST_TS_S`` (the Unix epoch: replays and tests may use call-relative
clocks starting at 0) and ``MAX_FUTURE_S`` after the worker's wall clock (gateway clocks may run a little ahead;
a day is generous). Anything else is a broken clock or a forged message, and would turn durations, KPIs and
Redis scores into nonsense or non-finite numbers. How far an end event may lie from its call's start is the
core's check (``MAX_CALL_DURATION_S``), because only the core knows the call."""

from __future__ import annotations

import math
import time

EARLIEST_TS_S = 0.0              # the Unix epoch
MAX_FUTURE_S = 86_400.0          # one day ahead of the worker's clock
MAX_CALL_DURATION_S = 86_400.0   # an end event more than a day after its call's start is a broken clock


def timestamp_problem(ts: float, now: float | None = None) -> str | None:
    """None when ``ts`` (seconds since the epoch) is acceptable, else what is wrong with it, for an error message."""
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return f"must be a number of seconds since the epoch, got {type(ts).__name__}"
    if not math.isfinite(ts):
        return f"must be finite, got {ts!r}"
    latest = (time.time() if now is None else now) + MAX_FUTURE_S
    if not EARLIEST_TS_S <= ts <= latest:
        return f"{ts!r} outside {EARLIEST_TS_S:.0f} (the epoch) .. now + {MAX_FUTURE_S:.0f} s ({latest:.0f})"
    return None
