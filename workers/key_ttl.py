"""When a live call's Redis keys need their EXPIRE again.

A live call's hash and timeline are written about once a second and expire ``active_ttl_s`` (an hour) after the
call goes quiet. Sending EXPIRE with every write kept that exact, at two of the four commands per written call.
Re-sending it once a tenth of the TTL has passed since this worker last set it keeps every written key at 90 % of
its TTL or more, for a small fraction of the commands. Ended calls always get their own, longer TTL at once.

The bound this gives up: a key that Redis lost (a restart without persistence, an eviction) and the next write
recreated has no TTL until its next refresh, a tenth of the TTL later at most (6 minutes by default). Only a worker
that stops for good within that time, with no other worker taking its calls over, leaves such a key without a TTL.
"""

from __future__ import annotations

from collections.abc import Iterable

REFRESH_FRACTION = 0.1


class KeyTtl:
    """The monotonic time at which this worker last set each live key's TTL. Keys not refreshed for a whole TTL
    (calls gone to another worker, or ended elsewhere) are dropped, so it holds about one entry per live key."""

    def __init__(self, ttl_s: float, refresh_fraction: float = REFRESH_FRACTION) -> None:
        if ttl_s <= 0 or not 0 < refresh_fraction <= 1:
            raise ValueError(f"need ttl_s > 0 and 0 < refresh_fraction <= 1, got {ttl_s} and {refresh_fraction}")
        self.ttl_s = ttl_s
        self.refresh_after_s = ttl_s * refresh_fraction
        self._set_at: dict[str, float] = {}
        self._pruned_at = float("-inf")

    def due(self, key: str, now: float) -> bool:
        set_at = self._set_at.get(key)
        return set_at is None or now - set_at >= self.refresh_after_s

    def mark_set(self, keys: Iterable[str], now: float) -> None:
        for key in keys:
            self._set_at[key] = now
        if now - self._pruned_at >= self.refresh_after_s:
            self._pruned_at = now
            self._set_at = {k: t for k, t in self._set_at.items() if now - t < self.ttl_s}

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._set_at.pop(key, None)

    def __len__(self) -> int:
        return len(self._set_at)
