"""What a core remembers of the calls that ended here, for ``ended_memory_s``: enough to tell a message read
again from one that is really late.

Kafka delivers at least once: a worker whose group session expired (a long pause, an overloaded host) or that
restarted reads again every message after the last committed offset, including those of calls that have since
ended. Such a message brings nothing: a chunk whose sequence number the leg had already passed at the end, or the
call's own start event (same time stamp). It is acknowledged and counted in
``callpulse_redelivered_messages_total``. Anything else for an ended call is really late (audio past the end, a
start event reusing the id) and goes to the dead letters as ``ended_call``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class EndedCall:
    at: float                                  # wall time it ended here (or was found ended in Redis)
    started_at: float | None = None            # its start event's time stamp, when known
    next_seq: dict[str, int] = field(default_factory=dict)   # per leg: the first sequence number it never had


class EndedCalls:
    def __init__(self) -> None:
        self._calls: OrderedDict[str, EndedCall] = OrderedDict()

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def add(self, call_id: str, at: float, started_at: float | None = None, next_seq: dict[str, int] | None = None) -> None:
        self._calls.pop(call_id, None)   # kept in the order they ended, for pruning
        self._calls[call_id] = EndedCall(at, started_at, dict(next_seq or {}))

    def add_saved(self, call_id: str, at: float, state_text: str | None) -> None:
        """A call found ended in Redis: its saved state (``_state``, see ``CallState.to_state``) holds its start
        time and each leg's resume point, which after the end is the first sequence number it never had."""
        started_at, next_seq = None, {}
        try:
            d = json.loads(state_text or "{}")
            started_at = d.get("started_at")
            next_seq = {leg: int(a["seq"]) for leg, a in d.get("anchor", {}).items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            pass   # unknown shape: every later message of the call counts as late
        self.add(call_id, at, started_at, next_seq)

    def is_repeat_chunk(self, call_id: str, leg: str, seq: int) -> bool:
        ended = self._calls.get(call_id)
        return ended is not None and seq < ended.next_seq.get(leg, 0)

    def is_repeat_start(self, call_id: str, ts: float) -> bool:
        ended = self._calls.get(call_id)
        return ended is not None and ended.started_at is not None and ts == ended.started_at

    def prune(self, now: float, memory_s: float) -> None:
        while self._calls and now - next(iter(self._calls.values())).at > memory_s:
            self._calls.popitem(last=False)
