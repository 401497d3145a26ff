"""The transcriber's pure core: a batch of Kafka records in, transcript segments, cue alerts and the calls'
resumable state out. No network here; the agent (``workers.transcribe.agent``) does the I/O and acknowledges
``TranscriptBatch.acks`` only after the sinks succeeded.

Input handling is the workers' own (``workers.ingest.Ingest``: decode, contract, dead letters, orphans,
duplicates); per leg, ``segmenter.LegCutter`` cuts utterances; the recogniser runs on the finished ones,
batched; text is redacted before it leaves this module.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from stream import topics
from stream.redis_keys import LEGS, STATE_FIELD
from stream.settings import Settings
from workers.audio import ANALYSIS_RATE_HZ
from workers.backlog import Backlog
from workers.batch import BatchResult, Record
from workers.cues import CueSet, cue_alert
from workers.ended_calls import EndedCalls
from workers.ingest import Ingest
from workers.metrics import WorkerMetrics

from .frontend import upsample_8k_to_16k
from .recognizer import DEFAULT_LANGUAGE, Transcript
from .redact import redact
from .segmenter import LegCutter, Utterance

log = logging.getLogger(__name__)
END_TOLERANCE_S = 0.05
# One utterance per recogniser call: Whisper's encoder has no padding mask, so batching utterances of different
# lengths would change a short one's text with its batch-mates (and on CPU batching buys little).
MAX_BATCH_UTTERANCES = 1


class Transcriber(Protocol):
    def transcribe(self, utterances: list[np.ndarray], languages: list[str]) -> list[Transcript]: ...


@dataclass
class TranscriptBatch(BatchResult):
    """``call_fields`` holds the transcriber's own per-call hash (status, language, ``_state``)."""
    segments: list[dict] = field(default_factory=list)


@dataclass(eq=False)   # identity: two calls' states are never compared
class TxCall:
    call_id: str
    horizon_s: float
    partition: int | None = None
    language: str = DEFAULT_LANGUAGE
    status: str = "active"
    last_seen: float = 0.0
    end_requested: list[float] | None = None
    queue: str = ""
    started_at: float | None = None   # the start event's time stamp: tells that event read again after the end
    segments: int = 0
    cue_last: dict[str, float] = field(default_factory=dict)   # "cue:leg" -> call time of its last alert
    legs: dict[str, LegCutter] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for leg in LEGS:
            self.legs.setdefault(leg, LegCutter.new(leg, self.horizon_s))

    @property
    def audio(self) -> dict:
        """What ``Ingest.push`` fills: the legs' reorder buffers."""
        return {leg: c.audio for leg, c in self.legs.items()}

    def to_state(self) -> str:
        return json.dumps({"language": self.language, "queue": self.queue, "started_at": self.started_at, "segments": self.segments, "cues": self.cue_last,
                           "legs": {leg: c.state() for leg, c in self.legs.items()}}, separators=(",", ":"))

    @classmethod
    def from_state(cls, call_id: str, horizon_s: float, text: str) -> "TxCall":
        d = json.loads(text)
        return cls(call_id, horizon_s, language=d.get("language") or DEFAULT_LANGUAGE, queue=d.get("queue", ""), started_at=d.get("started_at"),
                   segments=int(d.get("segments", 0)), cue_last={k: float(v) for k, v in d.get("cues", {}).items()},
                   legs={leg: LegCutter.from_state(leg, horizon_s, s) for leg, s in d["legs"].items()})


class TranscriptCore:
    def __init__(self, settings: Settings, recognizer: Transcriber, cues: CueSet | None, metrics: WorkerMetrics,
                 default_language: str = DEFAULT_LANGUAGE, clock=time.time) -> None:
        self.s = settings
        self.rec = recognizer
        self.cues = cues
        self.m = metrics
        self.default_language = default_language
        self.clock = clock
        self.ingest = Ingest(settings, metrics)
        self.calls: dict[str, TxCall] = {}
        self.ended = EndedCalls()
        self.looked_up: set[str] = set()
        self.backlog = Backlog(late_after_s=settings.end_grace_s)

    # -- lookup protocol with the agent (as workers.pipeline.Pipeline) ----------------------------
    @staticmethod
    def call_id_of(record: Record) -> str | None:
        return record.key.decode("utf-8", "replace") if record.key else None

    def needs_lookup(self, call_id: str) -> bool:
        return call_id not in self.calls and call_id not in self.ended and call_id not in self.looked_up

    def restore(self, call_id: str, fields: dict[str, str]) -> None:
        self.looked_up.add(call_id)
        if fields.get("status") == "ended":
            self.ended.add(call_id, self.clock())   # its saved state does not say where its legs ended
            return
        if fields.get(STATE_FIELD):
            call = TxCall.from_state(call_id, self.s.reorder_horizon_s, fields[STATE_FIELD])
            call.last_seen = self.clock()
            self.calls[call_id] = call
            self.m.calls_restored.inc()

    def drop_partitions(self, partitions: set[int]) -> int:
        gone = [cid for cid, c in self.calls.items() if c.partition in partitions]
        for cid in gone:
            del self.calls[cid]
            self.looked_up.discard(cid)
        self.backlog.forget(partitions)
        return len(gone)

    def mark_caught_up(self, keys) -> None:
        """The agent read these (topic, partition)s to the broker's end: nothing of theirs is in flight."""
        self.backlog.caught_up(keys)

    # -- the batch -------------------------------------------------------------------------------------
    def process(self, records: list[Record]) -> TranscriptBatch:
        out = TranscriptBatch()
        now = self.clock()
        touched: dict[str, TxCall] = {}
        for rec in records:
            self.backlog.note(rec, now)
            if rec.topic == topics.EVENTS:
                self._on_event(rec, now, out, touched)
            else:
                self._on_audio(rec, now, out, touched)
        grace = self.s.start_grace_s
        for call_id in self.ingest.expire_orphans(now, out, lambda rec, waited: self.backlog.start_surely_missing(rec, waited, grace)):
            self.looked_up.discard(call_id)
        ending = [c for c in self.calls.values() if self._should_end(c, now)]
        jobs: list[tuple[TxCall, Utterance]] = []
        for call in touched.values():
            if call not in ending:
                jobs += [(call, u) for leg in LEGS for u in call.legs[leg].cut()]
        for call in ending:
            for leg in LEGS:
                call.legs[leg].audio.flush_pending()
                jobs += [(call, u) for u in call.legs[leg].cut(final=True)]
            touched[call.call_id] = call
        self._transcribe(jobs, out)
        for call in ending:
            self._finish(call, out)
        for call in touched.values():
            if call.status == "active":
                for leg in LEGS:
                    out.acks.extend(call.legs[leg].release())
            out.call_fields[call.call_id] = {"call_id": call.call_id, "status": call.status, "language": call.language,
                                             "segments": str(call.segments), STATE_FIELD: call.to_state()}
        self.ended.prune(now, self.s.ended_memory_s)
        self.ingest.flush_acks(out)
        self.m.transcriber_calls.set(len(self.calls))
        return out

    def expire(self) -> TranscriptBatch:
        return self.process([])

    # -- input -------------------------------------------------------------------------------------------
    def _on_event(self, rec: Record, now: float, out: TranscriptBatch, touched: dict) -> None:
        ev = self.ingest.event(rec, out)
        if ev is None:
            return
        call = self.calls.get(ev.call_id)
        if ev.type == "start":
            if ev.call_id in self.ended:
                self.ingest.ended_start(out, rec, ev, self.ended)
                return
            out.ack(rec)
            if call is None:
                call = self.calls[ev.call_id] = TxCall(ev.call_id, self.s.reorder_horizon_s, rec.partition, last_seen=now)
                self.looked_up.add(ev.call_id)
                self.m.calls_started.inc()
            call.language = (ev.language or self.default_language).lower().split("-")[0]
            call.queue = ev.queue or call.queue
            call.started_at = call.started_at or ev.ts
            touched[call.call_id] = call
            self.ingest.adopt_orphans(call, now)
            return
        if call is None:
            if ev.call_id in self.ended:
                out.ack(rec)
            else:
                self.ingest.dead(out, rec, "unknown_call", f"end event for call {ev.call_id!r}, which never started")
            return
        out.ack(rec)
        call.end_requested = [ev.ts, now]
        touched[call.call_id] = call

    def _on_audio(self, rec: Record, now: float, out: TranscriptBatch, touched: dict) -> None:
        routed = self.ingest.route(rec, out, now, self.calls, self.ended)
        if routed is not None:
            call, frame = routed
            touched[call.call_id] = call
            self.ingest.push(call, rec, frame, now)

    def _should_end(self, call: TxCall, now: float) -> bool:
        """As the emotion worker's lifecycle: at the end event once the audio has caught up with its time; by the
        grace or the inactivity timeout only while the call's audio partition is not read late."""
        waits_apply = not self.backlog.audio_behind(call.partition)
        if waits_apply and now - call.last_seen > self.s.inactivity_timeout_s:
            return True
        if not call.end_requested:
            return False
        end_ts, asked_at = call.end_requested
        legs = [c.audio for c in call.legs.values()]
        caught_up = all(a.next_ts is not None and a.next_ts >= end_ts - END_TOLERANCE_S and not a.pending for a in legs)
        return caught_up or (waits_apply and now - max(asked_at, call.last_seen) > self.s.end_grace_s)

    def _finish(self, call: TxCall, out: TranscriptBatch) -> None:
        call.status = "ended"
        for leg in LEGS:
            out.acks.extend(call.legs[leg].audio.release_all())
        self.calls.pop(call.call_id, None)
        self.looked_up.discard(call.call_id)
        self.ended.add(call.call_id, self.clock(), call.started_at, {leg: call.legs[leg].audio.next_seq for leg in LEGS})
        out.ended.append(call.call_id)

    # -- recognition -----------------------------------------------------------------------------------
    def _transcribe(self, jobs: list[tuple[TxCall, Utterance]], out: TranscriptBatch) -> None:
        self.m.transcriber_queue.set(len(jobs))
        for i in range(0, len(jobs), MAX_BATCH_UTTERANCES):
            part = jobs[i:i + MAX_BATCH_UTTERANCES]
            now = self.clock()
            for _, u in part:
                if u.speech_end_ts is not None:
                    self.m.transcriber_wait.observe(max(now - u.speech_end_ts, 0.0))
            audio = [upsample_8k_to_16k(u.audio) for _, u in part]
            t0 = time.perf_counter()
            try:
                texts = self.rec.transcribe(audio, [c.language for c, _ in part])
            except Exception:   # a model failure must not stop the tier: the utterances are lost, counted and logged
                log.exception("recogniser failed on %d utterance(s)", len(part))
                self.m.transcriber_errors.inc(len(part))
                texts = [None] * len(part)
            spent = time.perf_counter() - t0
            self.m.transcriber_seconds.observe(spent)
            self.m.transcriber_audio_seconds.inc(sum(len(u.audio) for _, u in part) / ANALYSIS_RATE_HZ)
            self.m.transcriber_compute_seconds.inc(spent)
            for (call, u), tx in zip(part, texts):
                if tx is not None:
                    self._segment(call, u, tx, out)
            self.m.transcriber_queue.set(max(len(jobs) - i - len(part), 0))

    def _segment(self, call: TxCall, u: Utterance, tx: Transcript, out: TranscriptBatch) -> None:
        text, n_redacted = redact(tx.text)
        start_s, end_s = u.start / ANALYSIS_RATE_HZ, u.end / ANALYSIS_RATE_HZ
        at = u.speech_end_ts or self.clock()
        seg_id = f"{call.call_id}:{u.leg}:{int(round(start_s * 1000))}"
        hits = self.cues.match(text, tx.language, u.leg) if self.cues is not None and text else []
        seg = {"segment_id": seg_id, "call_id": call.call_id, "leg": u.leg, "start": round(start_s, 3),
               "end": round(end_s, 3), "text": text, "language": tx.language, "confidence": tx.confidence,
               "final": not u.cut, "redactions": n_redacted, "cues": [h.cue.name for h in hits], "at": round(at, 3)}
        call.segments += 1
        out.segments.append(seg)
        if u.speech_end_ts is not None:
            out.step_capture_ts.append(u.speech_end_ts)
        self.m.transcriber_segments.labels(u.leg).inc()
        if n_redacted:
            self.m.transcriber_redactions.inc(n_redacted)
        t = round(u.speech_end / ANALYSIS_RATE_HZ, 3)
        for h in hits:
            key = f"{h.cue.name}:{u.leg}"
            if key in call.cue_last and t - call.cue_last[key] < h.cue.cooldown_s:
                continue
            call.cue_last[key] = t
            out.alerts.append(cue_alert(h, call.call_id, u.leg, t, at, text))
            self.m.alerts.labels(h.cue.name, h.cue.severity, call.queue or "unknown").inc()
