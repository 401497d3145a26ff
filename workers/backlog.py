"""Where this worker reads behind the producers, so that wall-clock waits do not misfire on a backlog.

The core ends calls and gives up on chunks by wall-clock waits: the end grace, the inactivity timeout and the
start grace. They assume that what was produced has been read. A worker working through a backlog (after an
outage, a restart, a rebalance, or simply overloaded) reads minutes-old audio, and the small events topic can
run ahead of the audio or behind it; those waits would then end calls before their last chunks and drop chunks
whose start event is still unread. Lateness is the Kafka record timestamp (producer clock) against the
worker's clock; the agent says when a partition has been read to the broker's end.
"""

from __future__ import annotations

from typing import Iterable

from stream import topics

from .batch import Record


class Backlog:
    def __init__(self, late_after_s: float) -> None:
        self.late_after_s = late_after_s
        self.late: dict[tuple[str, int | None], float] = {}   # (topic, partition) -> lateness of its latest record
        self.events_read_until: dict[int | None, float] = {}   # partition -> newest event timestamp read

    def note(self, rec: Record, now: float) -> None:
        if rec.timestamp is None:
            return
        key = (rec.topic, rec.partition)
        if now - rec.timestamp > self.late_after_s:
            self.late[key] = now - rec.timestamp
        else:
            self.late.pop(key, None)
        if rec.topic == topics.EVENTS:
            self.events_read_until[rec.partition] = max(rec.timestamp, self.events_read_until.get(rec.partition, rec.timestamp))

    def caught_up(self, keys: Iterable[tuple[str, int]]) -> None:
        """These (topic, partition)s were read to the broker's end: nothing of theirs is in flight."""
        for key in keys:
            self.late.pop(key, None)

    def forget(self, partitions: set[int]) -> None:
        for key in [k for k in self.late if k[1] in partitions]:
            del self.late[key]
        for p in partitions:
            self.events_read_until.pop(p, None)

    def audio_behind(self, partition: int | None) -> bool:
        return (topics.AUDIO, partition) in self.late

    def start_surely_missing(self, rec: Record, waited_s: float, grace_s: float) -> bool:
        """A chunk has waited ``waited_s`` for its call's start event: has that event had its chance? Yes once the
        events read on its partition were produced ``grace_s`` after the chunk, or, where neither topic of the
        partition is read late, once ``grace_s`` of wall time passed."""
        p = rec.partition
        if rec.timestamp is not None and self.events_read_until.get(p, float("-inf")) >= rec.timestamp + grace_s:
            return True
        return waited_s > grace_s and (topics.AUDIO, p) not in self.late and (topics.EVENTS, p) not in self.late
