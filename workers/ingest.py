"""Ingest: Kafka records into decoded events and leg chunks, with the input contract enforced.

Bad records are dead-lettered with their reason (counted, acknowledged); chunks of a call whose start event
has not arrived wait here as orphans for ``start_grace_s``; duplicates and stale chunks are acknowledged
with the batch. Which call a decoded record belongs to, and what a start or end means, is the pipeline's.
"""

from __future__ import annotations

from typing import Any, Callable

from stream.events import CallEvent, EventError, decode_event
from stream.frame import LEGS, AudioFrame, FrameError, decode_frame
from stream.settings import Settings

from .audio import buffered_samples
from .batch import BatchResult, DeadLetter, Record
from .call_state import CallState
from .ended_calls import EndedCalls
from .leg_audio import Chunk
from .metrics import WorkerMetrics


class Ingest:
    def __init__(self, settings: Settings, metrics: WorkerMetrics) -> None:
        self.s = settings
        self.m = metrics
        self.orphans: dict[str, list[tuple[float, Record, AudioFrame]]] = {}   # call id -> chunks before its start
        self._pending_acks: list[Any] = []   # tokens of dropped duplicates, acknowledged with the batch
        self._chunk_counters = {leg: metrics.chunks.labels(leg) for leg in LEGS}   # labels() per chunk costs more than inc()

    def dead(self, out: BatchResult, rec: Record, reason: str, message: str) -> None:
        self.m.bad_input.labels(reason).inc()
        out.dead.append(DeadLetter(rec, reason, message))
        out.ack(rec)

    def redelivered(self, out: BatchResult, rec: Record) -> None:
        """A message of an ended call read again (``workers.ended_calls``): acknowledged, counted, no effect."""
        self.m.redelivered.inc()
        out.ack(rec)

    def ended_start(self, out: BatchResult, rec: Record, ev: CallEvent, ended: EndedCalls) -> None:
        """A start event for a call in ``ended``: its own start read again, or a new call reusing the id."""
        if ended.is_repeat_start(ev.call_id, ev.ts):
            self.redelivered(out, rec)
        else:
            self.dead(out, rec, "ended_call", f"start event for call {ev.call_id!r}, which already ended")

    def event(self, rec: Record, out: BatchResult) -> CallEvent | None:
        """The record's start/end event, or None after dead-lettering it."""
        try:
            ev = decode_event(rec.value)
        except EventError as exc:
            self.dead(out, rec, exc.reason, str(exc))
            return None
        return ev if self._key_matches(rec, ev.call_id, out) else None

    def frame(self, rec: Record, out: BatchResult) -> AudioFrame | None:
        """The record's audio frame, or None after dead-lettering it."""
        try:
            frame = decode_frame(rec.value, self.s.max_payload_bytes)
        except FrameError as exc:
            self.dead(out, rec, exc.reason, str(exc))
            return None
        return frame if self._key_matches(rec, frame.call_id, out) else None

    def _key_matches(self, rec: Record, call_id: str, out: BatchResult) -> bool:
        """The key must be the call id's UTF-8 bytes: any other key (none included) may sit on another partition
        than the rest of the call."""
        if rec.key == call_id.encode("utf-8"):
            return True
        self.dead(out, rec, "key_mismatch", f"message key {rec.key!r} is not the UTF-8 call id {call_id!r} of its value")
        return False

    def route(self, rec: Record, out: BatchResult, now: float, calls: dict, ended: EndedCalls) -> tuple[Any, AudioFrame] | None:
        """An audio record's (call, frame) among ``calls``, or None after acknowledging it (a chunk of an ended call
        read again), dead-lettering it (bad, or late for an ended call) or holding it as an orphan until its start
        event. The call's partition follows the record's."""
        frame = self.frame(rec, out)
        if frame is None:
            return None
        if frame.call_id in ended:
            if ended.is_repeat_chunk(frame.call_id, frame.leg, frame.seq):
                self.redelivered(out, rec)
                return None
            self.dead(out, rec, "ended_call", f"chunk seq {frame.seq} ({frame.leg}) for call {frame.call_id!r}, which already ended")
            return None
        call = calls.get(frame.call_id)
        if call is None:
            self.hold_orphan(rec, frame, now)
            return None
        if rec.partition is not None:
            call.partition = rec.partition
        return call, frame

    def hold_orphan(self, rec: Record, frame: AudioFrame, now: float) -> None:
        self.orphans.setdefault(frame.call_id, []).append((now, rec, frame))

    def adopt_orphans(self, call: CallState, now: float) -> None:
        """The call's start event arrived: push the chunks that waited for it."""
        for _, rec, frame in self.orphans.pop(call.call_id, []):
            self.push(call, rec, frame, now)

    def push(self, call: CallState, rec: Record, frame: AudioFrame, now: float) -> None:
        samples, table = buffered_samples(frame.payload, frame.encoding, frame.sample_rate)
        reason = call.audio[frame.leg].push(Chunk(frame.seq, frame.capture_ts, samples, rec.token, table))
        call.last_seen = now
        if reason:
            self.m.chunks_dropped.labels(reason).inc()
            if rec.token is not None:
                self._pending_acks.append(rec.token)
        else:
            self._chunk_counters[frame.leg].inc()

    def expire_orphans(self, now: float, out: BatchResult, start_missing: Callable[[Record, float], bool]) -> list[str]:
        """Dead-letter the chunks whose start event never came (``start_missing(first chunk, seconds waited)``);
        returns their call ids."""
        expired = [c for c, held in self.orphans.items() if start_missing(held[0][1], now - held[0][0])]
        for call_id in expired:
            for _, rec, frame in self.orphans.pop(call_id):
                self.dead(out, rec, "unknown_call", f"chunk seq {frame.seq} for call {call_id!r}: no start event within {self.s.start_grace_s:g} s")
        return expired

    def flush_acks(self, out: BatchResult) -> None:
        if self._pending_acks:
            out.acks.extend(self._pending_acks)
            self._pending_acks = []
