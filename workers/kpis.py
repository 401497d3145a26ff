"""Manager KPIs over rolling windows, from end-of-call summaries. A pure function: the KPI job feeds it.

A call counts in a window when it *ended* inside the window. "today" starts at 00:00 UTC.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

KPI_WINDOWS: tuple[tuple[str, float | None], ...] = (("15m", 900.0), ("1h", 3600.0), ("today", None))
DIMENSIONS = ("queue", "campaign", "agent")
NEGATIVE_END_BELOW = -0.2     # a call "ends negative" when the customer's final rolling sentiment is below this
IMPROVED_BY = 0.2             # ... and "improved" when it ends this much above where it started
DAY_S = 86_400.0
CLOCK_SKEW_S = 60.0           # an end time this far ahead of our clock (gateway clock skew) still counts as ended now
_DIM_FIELD = {"queue": "queue", "campaign": "campaign", "agent": "agent_id"}


def window_start(name: str, length: float | None, now: float) -> float:
    return now - now % DAY_S if length is None else now - length


def _kpis(calls: list[Mapping]) -> dict[str, float]:
    n = len(calls)
    out: dict[str, float] = {"calls": n}
    if not n:
        return out
    duration = sum(float(c.get("duration_s") or 0) for c in calls)
    out["aht_s"] = duration / n
    out["alerts_per_100"] = 100.0 * sum(int(c.get("alerts") or 0) for c in calls) / n
    if duration > 0:
        out["silence_ratio"] = sum(float(c.get("silence_s") or 0) for c in calls) / duration
        out["overtalk_rate"] = sum(float(c.get("overtalk_s") or 0) for c in calls) / duration
    mean = [c["customer_sentiment_mean"] for c in calls if c.get("customer_sentiment_mean") is not None]
    end = [c["customer_sentiment_end"] for c in calls if c.get("customer_sentiment_end") is not None]
    if mean:
        out["sentiment_mean"] = sum(mean) / len(mean)
    if end:
        out["sentiment_end"] = sum(end) / len(end)
        out["negative_share"] = sum(e < NEGATIVE_END_BELOW for e in end) / len(end)
    both = [c for c in calls if c.get("customer_sentiment_end") is not None and c.get("customer_sentiment_start") is not None]
    if both:
        out["improved_share"] = sum(c["customer_sentiment_end"] - c["customer_sentiment_start"] > IMPROVED_BY for c in both) / len(both)
    return out


def compute_kpis(summaries: Iterable[Mapping], now: float, windows=KPI_WINDOWS, dimensions=DIMENSIONS) -> dict[tuple[str, str], dict[str, float]]:
    """{(dimension, value): {"{window}.{kpi}": number}}, plus ("all", "all"). Ratio KPIs are absent when a
    window has no calls (no fake zeros)."""
    summaries = list(summaries)
    groups: dict[tuple[str, str], list[Mapping]] = defaultdict(list)
    for s in summaries:
        groups[("all", "all")].append(s)
        for dim in dimensions:
            value = s.get(_DIM_FIELD[dim]) or "unknown"
            groups[(dim, str(value))].append(s)
    table: dict[tuple[str, str], dict[str, float]] = {}
    for key, calls in groups.items():
        row: dict[str, float] = {}
        for name, length in windows:
            start = window_start(name, length, now)
            inside = [c for c in calls if start <= float(c["ended_at"]) <= now + CLOCK_SKEW_S]
            for kpi, value in _kpis(inside).items():
                row[f"{name}.{kpi}"] = value
        table[key] = row
    return table
