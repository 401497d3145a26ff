"""The pure core of a worker: a batch of Kafka records in, everything the sinks must write out.

No network here. The Faust agent (``workers.agent``) feeds batches and performs the I/O. This module owns the
call lifecycle (start, restore, end, timeouts, rebalances) and runs one batch through its stages, each in a
module of its own:

    ingest.py    records -> decoded events and leg chunks (dead letters, orphans, duplicates)
    analysis.py  complete steps -> VAD -> ONE batched model call for all ready windows of all calls
    pairing.py   the two legs' steps -> call-level steps: conversation metrics, timeline, rules, alerts
    summary.py   end-of-call summary and KPI counters
    render.py    the call hash fields

Tokens are opaque handles of Kafka messages; the caller acknowledges ``BatchResult.acks`` only after the sinks
succeeded.
"""

from __future__ import annotations

import logging
import time
from typing import Iterable

from stream import topics
from stream.redis_keys import LEGS, STATE_FIELD
from stream.settings import Settings
from stream.timestamps import MAX_CALL_DURATION_S

from .analysis import Analyser, ModelRunner
from .backlog import Backlog
from .batch import BatchResult, DeadLetter, Record
from .call_state import CallState
from .ended_calls import EndedCalls
from .ingest import Ingest
from .metrics import WorkerMetrics
from .pairing import RuleRunner, StepPairer
from .render import render_call
from .summary import call_summary, count_call_end

__all__ = ["BatchResult", "DeadLetter", "Pipeline", "Record"]

END_TOLERANCE_S = 0.05   # capture clocks of audio and events agree to better than this
END_BEFORE_START_S = 60.0   # an end event this much before its call's start is a broken clock, not skew
log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, settings: Settings, models: ModelRunner, emotion_labels: Iterable[str],
                 metrics: WorkerMetrics, rules: RuleRunner | None = None, clock=time.time) -> None:
        self.s = settings
        self.m = metrics
        self.rules = rules
        self.clock = clock
        self.ingest = Ingest(settings, metrics)
        self.analyser = Analyser(settings, models, emotion_labels, metrics)
        self.pairer = StepPairer(settings, metrics, rules, clock)
        self.hop, self.window = self.analyser.hop, self.analyser.window
        self.calls: dict[str, CallState] = {}
        self.ended = EndedCalls()
        self.looked_up: set[str] = set()
        self.backlog = Backlog(late_after_s=settings.end_grace_s)

    # -- lookup protocol with the agent ---------------------------------------------------------
    def needs_lookup(self, call_id: str) -> bool:
        """True when a call is unknown here and its saved state (if any) should be fetched first."""
        return call_id not in self.calls and call_id not in self.ended and call_id not in self.looked_up

    def restore(self, call_id: str, fields: dict[str, str]) -> None:
        """Adopt saved state from the call's Redis hash (empty dict: nothing saved)."""
        self.looked_up.add(call_id)
        text = fields.get(STATE_FIELD)
        if not text:
            return
        if fields.get("status") == "ended":
            self.ended.add_saved(call_id, self.clock(), text)
            return
        call = CallState.from_state(call_id, self.hop, self.window, self.s.reorder_horizon_s, text)
        call.last_seen = self.clock()
        if self.rules is not None and call.rules_state:
            self.rules.restore_state(call_id, call.rules_state)
        self.calls[call_id] = call
        self.m.calls_restored.inc()

    def drop_partitions(self, partitions: set[int]) -> int:
        """After a rebalance took these partitions away: forget their calls (the new owner restores them)."""
        gone = [cid for cid, c in self.calls.items() if c.partition in partitions]
        for cid in gone:
            del self.calls[cid]
            self.looked_up.discard(cid)
            if self.rules is not None:
                self.rules.forget(cid)
        self.backlog.forget(partitions)
        self.m.active_calls.set(len(self.calls))
        return len(gone)

    def mark_caught_up(self, keys: Iterable[tuple[str, int]]) -> None:
        """The agent read these (topic, partition)s to the broker's end: nothing of theirs is in flight."""
        self.backlog.caught_up(keys)

    @staticmethod
    def call_id_of(record: Record) -> str | None:
        return record.key.decode("utf-8", "replace") if record.key else None

    # -- the batch -------------------------------------------------------------------------------
    def process(self, records: list[Record]) -> BatchResult:
        t0 = time.perf_counter()
        out = BatchResult()
        now = self.clock()
        touched: dict[str, tuple[CallState, tuple | None]] = {}   # call id -> (call, progress at first touch)
        ending: list[tuple[CallState, str, float]] = []
        for rec in records:
            self.backlog.note(rec, now)
            try:
                if rec.topic == topics.EVENTS:
                    self._on_event(rec, now, out, touched)
                else:
                    self._on_audio(rec, now, out, touched)
            except Exception as exc:   # a bug must cost one record, never the batch (and a crash loop)
                log.exception("internal error on a %s record; dead-lettered", rec.topic)
                self.ingest.dead(out, rec, "internal_error", f"{type(exc).__name__}: {exc}"[:500])
        self._expire(now, out, ending)
        touched_calls = [c for c, _ in touched.values()]
        self.analyser.analyse(touched_calls, out)
        for call in touched_calls:
            self.pairer.pair(call, out, final=False)
        for call in list(self.calls.values()):
            if call.end_requested and self._ready_to_end(call, now) and all(c is not call for c, _, _ in ending):
                ending.append((call, "event", call.end_requested[0]))
        for call, reason, ts in ending:
            self._finish(call, reason, ts, out)
            self._touch(touched, call, force=True)
        for call, before in touched.values():
            # A call that only buffered audio in this batch has nothing new to show or save: its held messages
            # stay unacknowledged, so the state saved at its last write is still the right resume point.
            if before is not None and before == self._progress(call):
                continue
            if call.status == "active" and call.call_id in self.calls:
                for leg in LEGS:
                    out.acks.extend(call.audio[leg].release())
            fields = out.call_fields[call.call_id] = render_call(call, self.s.worker_name)
            if call.status == "active":
                out.risks[call.call_id] = float(fields["risk"])
        self.m.active_calls.set(len(self.calls))
        self.m.batch_seconds.observe(time.perf_counter() - t0)
        return out

    def expire(self) -> BatchResult:
        """Run timeouts with no new records (called by a timer)."""
        return self.process([])

    # -- lifecycle -------------------------------------------------------------------------------
    def _on_event(self, rec: Record, now: float, out: BatchResult, touched: dict) -> None:
        ev = self.ingest.event(rec, out)
        if ev is None:
            return
        if ev.type == "start":
            if ev.call_id in self.ended:
                self.ingest.ended_start(out, rec, ev, self.ended)
                return
            out.ack(rec)
            call = self.calls.get(ev.call_id)
            if call is None:
                call = self._new_call(ev.call_id, rec.partition, now)
            call.meta.update({k: v for k, v in ev.metadata().items() if v})
            call.started_at = call.started_at or ev.ts
            self._touch(touched, call, force=True)
            self.ingest.adopt_orphans(call, now)
            return
        call = self.calls.get(ev.call_id)
        if call is None:
            if ev.call_id in self.ended:
                out.ack(rec)  # a repeated end event: nothing to do
                return
            self.ingest.dead(out, rec, "unknown_call", f"end event for call {ev.call_id!r}, which never started")
            return
        if call.started_at and not call.started_at - END_BEFORE_START_S <= ev.ts <= call.started_at + MAX_CALL_DURATION_S:
            self.ingest.dead(out, rec, "bad_timestamp", f"end event of call {ev.call_id!r}: ts {ev.ts!r} is not within "
                             f"-{END_BEFORE_START_S:g} s .. {MAX_CALL_DURATION_S:g} s of its start {call.started_at!r}")
            return
        out.ack(rec)
        self._touch(touched, call, force=True)
        # The end event travels on another topic and can overtake the last chunks: finish once the audio
        # has caught up with the end time, or when no more audio arrives (see _ready_to_end).
        call.end_requested = [ev.ts, now]

    def _on_audio(self, rec: Record, now: float, out: BatchResult, touched: dict) -> None:
        routed = self.ingest.route(rec, out, now, self.calls, self.ended)
        if routed is not None:
            call, frame = routed
            self._touch(touched, call)
            self.ingest.push(call, rec, frame, now)

    def _ready_to_end(self, call: CallState, now: float) -> bool:
        end_ts, asked_at = call.end_requested
        # A leg with no audio yet may have it all in flight: only the grace period ends such a call.
        caught_up = all(a.next_ts is not None and a.next_ts >= end_ts - END_TOLERANCE_S for a in call.audio.values())
        if caught_up and not any(a.pending for a in call.audio.values()):
            return True
        return not self.backlog.audio_behind(call.partition) and now - max(asked_at, call.last_seen) > self.s.end_grace_s

    @staticmethod
    def _progress(call: CallState) -> tuple:
        return call.steps_done, call.audio["agent"].steps_done, call.audio["customer"].steps_done, call.status

    def _touch(self, touched: dict, call: CallState, force: bool = False) -> None:
        if force:
            touched[call.call_id] = (call, None)
        elif call.call_id not in touched:
            touched[call.call_id] = (call, self._progress(call))

    def _new_call(self, call_id: str, partition: int | None, now: float) -> CallState:
        call = CallState(call_id, self.hop, self.window, self.s.reorder_horizon_s, partition=partition, last_seen=now)
        self.calls[call_id] = call
        self.looked_up.add(call_id)
        self.m.calls_started.inc()
        return call

    def _expire(self, now: float, out: BatchResult, ending: list) -> None:
        grace = self.s.start_grace_s
        for call_id in self.ingest.expire_orphans(now, out, lambda rec, waited: self.backlog.start_surely_missing(rec, waited, grace)):
            self.looked_up.discard(call_id)
        already = {c.call_id for c, _, _ in ending}
        timeout = self.s.inactivity_timeout_s
        for call in self.calls.values():   # every live call, every batch: the cheap test first
            if now - call.last_seen > timeout and call.call_id not in already and not self.backlog.audio_behind(call.partition):
                ending.append((call, "timeout", call.updated_at or now))
        self.ended.prune(now, self.s.ended_memory_s)
        self.ingest.flush_acks(out)

    def _finish(self, call: CallState, reason: str, ended_at: float, out: BatchResult) -> None:
        for leg in LEGS:
            call.audio[leg].flush_pending()
        self.analyser.analyse([call], out)
        self.pairer.pair(call, out, final=True)
        call.status = "ended"
        summary = call_summary(call, reason, ended_at)
        out.summaries.append(summary)
        out.ended.append(call.call_id)
        for leg in LEGS:
            out.acks.extend(call.audio[leg].release_all())
        self.calls.pop(call.call_id, None)
        self.looked_up.discard(call.call_id)   # `ended` answers for it from now on, and is pruned
        self.ended.add(call.call_id, self.clock(), call.started_at, {leg: call.audio[leg].next_seq for leg in LEGS})
        if self.rules is not None:
            self.rules.forget(call.call_id)
        count_call_end(self.m, summary, self.s.agent_metrics)
