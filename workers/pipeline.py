"""The pure core of a worker: a batch of Kafka records in, everything the sinks must write out.

No network here. The Faust agent (``workers.agent``) feeds batches and performs the I/O; this module
decodes, reorders, cuts steps, runs the VAD and the models (one batched call for all ready windows of all
calls), updates per-call state, evaluates the alert rules, and renders the Redis fields. Tokens are opaque
handles of Kafka messages; the caller acknowledges ``BatchResult.acks`` only after the sinks succeeded.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import numpy as np

from stream import topics
from stream.events import EventError, decode_event
from stream.frame import FrameError, decode_frame
from stream.redis_keys import LEGS, STATE_FIELD
from stream.settings import Settings

from .audio import ANALYSIS_RATE_HZ, decode_payload, to_analysis_rate
from .call_state import CallState
from .evidence import EvidenceConfig, pauses
from .leg_audio import Chunk
from .metrics import WorkerMetrics
from .vad import FRAME_S

END_TOLERANCE_S = 0.05   # capture clocks of audio and events agree to better than this
MAX_LEG_LAG_STEPS = 5   # a leg this far behind (or absent) counts as silent for call-level metrics
SPARK_WINDOW_S = 60.0
SENTIMENT_NEGATIVE_BELOW = -0.2
SENTIMENT_POSITIVE_ABOVE = 0.2
SENTIMENT_IMPROVED_BY = 0.2
DEFAULT_EVIDENCE = EvidenceConfig()
ALERT_LOG_KEEP = 10      # opened alerts (with evidence) kept in the call hash for the drill-down


class ModelRunner(Protocol):
    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class RuleRunner(Protocol):
    evidence: EvidenceConfig     # the rules file's evidence: settings

    def evaluate(self, call_id: str, t: float, at: float, metrics: dict[str, float], evidence: Callable[[str], dict | None] | None = None) -> list: ...
    def export_state(self, call_id: str) -> dict: ...
    def restore_state(self, call_id: str, state: dict) -> None: ...
    def forget(self, call_id: str) -> None: ...


@dataclass(slots=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes
    token: Any = None
    partition: int | None = None
    headers: dict | None = None


@dataclass(slots=True)
class DeadLetter:
    record: Record
    reason: str
    message: str


@dataclass
class BatchResult:
    call_fields: dict[str, dict[str, str]] = field(default_factory=dict)   # call id -> hash fields
    timeline: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    alerts: list = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)
    risks: dict[str, float] = field(default_factory=dict)                  # active call id -> risk
    ended: list[str] = field(default_factory=list)
    acks: list[Any] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    step_capture_ts: list[float] = field(default_factory=list)            # for end-to-end latency


@dataclass(slots=True)
class _StepJob:
    call: CallState
    leg: str
    k: int
    mask: np.ndarray
    level_db: np.ndarray
    window: np.ndarray | None
    capture_end: float | None
    emotions: dict[str, float] | None = None
    sentiment: float | None = None


class Pipeline:
    def __init__(self, settings: Settings, models: ModelRunner, emotion_labels: Iterable[str],
                 metrics: WorkerMetrics, rules: RuleRunner | None = None, clock=time.time) -> None:
        self.s = settings
        self.models = models
        self.labels = tuple(emotion_labels)
        self.m = metrics
        self.rules = rules
        self.clock = clock
        self.hop = int(round(settings.hop_s * ANALYSIS_RATE_HZ))
        self.window = int(round(settings.window_s * ANALYSIS_RATE_HZ))
        self.min_window_speech_frames = int(settings.min_window_speech_s / FRAME_S)
        self.calls: dict[str, CallState] = {}
        self.ended: OrderedDict[str, float] = OrderedDict()       # call id -> wall time it ended here
        self.orphans: dict[str, list[tuple[float, Record, Any]]] = {}
        self.looked_up: set[str] = set()
        self._pending_acks: list[Any] = []    # tokens of dropped duplicates, acknowledged with the batch

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
            self.ended[call_id] = self.clock()
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
        self.m.active_calls.set(len(self.calls))
        return len(gone)

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
            if rec.topic == topics.EVENTS:
                self._on_event(rec, now, out, touched, ending)
            else:
                self._on_audio(rec, now, out, touched)
        self._expire(now, out, ending)
        self._analyse([c for c, _ in touched.values()], out)
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
            fields = out.call_fields[call.call_id] = self._render(call)
            if call.status == "active":
                out.risks[call.call_id] = float(fields["risk"])
        self.m.active_calls.set(len(self.calls))
        self.m.batch_seconds.observe(time.perf_counter() - t0)
        return out

    # -- input -----------------------------------------------------------------------------------
    @staticmethod
    def _ack(out: BatchResult, rec: Record) -> None:
        if rec.token is not None:
            out.acks.append(rec.token)

    def _dead(self, out: BatchResult, rec: Record, reason: str, message: str) -> None:
        self.m.bad_input.labels(reason).inc()
        out.dead.append(DeadLetter(rec, reason, message))
        self._ack(out, rec)

    def _on_event(self, rec: Record, now: float, out: BatchResult, touched: dict, ending: list) -> None:
        try:
            ev = decode_event(rec.value)
        except EventError as exc:
            self._dead(out, rec, exc.reason, str(exc))
            return
        if ev.type == "start":
            if ev.call_id in self.ended:
                self._dead(out, rec, "ended_call", f"start event for call {ev.call_id!r}, which already ended")
                return
            self._ack(out, rec)
            call = self.calls.get(ev.call_id)
            if call is None:
                call = self._new_call(ev.call_id, rec.partition, now)
            call.meta.update({k: v for k, v in ev.metadata().items() if v})
            call.started_at = call.started_at or ev.ts
            self._touch(touched, call, force=True)
            for _, orec, frame in self.orphans.pop(ev.call_id, []):
                self._push(call, orec, frame, now)
        else:
            call = self.calls.get(ev.call_id)
            if call is None:
                if ev.call_id in self.ended:
                    self._ack(out, rec)  # a repeated end event: nothing to do
                    return
                self._dead(out, rec, "unknown_call", f"end event for call {ev.call_id!r}, which never started")
                return
            self._ack(out, rec)
            self._touch(touched, call, force=True)
            # The end event travels on another topic and can overtake the last chunks: finish once the audio
            # has caught up with the end time, or when no more audio arrives (see _ready_to_end).
            call.end_requested = [ev.ts, now]

    def _ready_to_end(self, call: CallState, now: float) -> bool:
        end_ts, asked_at = call.end_requested
        # A leg with no audio yet may have it all in flight: only the grace period ends such a call.
        caught_up = all(a.next_ts is not None and a.next_ts >= end_ts - END_TOLERANCE_S for a in call.audio.values())
        return (caught_up and not any(a.pending for a in call.audio.values())) or now - max(asked_at, call.last_seen) > self.s.end_grace_s

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

    def _on_audio(self, rec: Record, now: float, out: BatchResult, touched: dict) -> None:
        try:
            frame = decode_frame(rec.value, self.s.max_payload_bytes)
        except FrameError as exc:
            self._dead(out, rec, exc.reason, str(exc))
            return
        if rec.key is not None and rec.key.decode("utf-8", "replace") != frame.call_id:
            self._dead(out, rec, "key_mismatch", f"message key {rec.key!r} differs from the frame's call id {frame.call_id!r}")
            return
        if frame.call_id in self.ended:
            self._dead(out, rec, "ended_call", f"chunk seq {frame.seq} ({frame.leg}) for call {frame.call_id!r}, which already ended")
            return
        call = self.calls.get(frame.call_id)
        if call is None:
            self.orphans.setdefault(frame.call_id, []).append((now, rec, frame))
            return
        call.partition = rec.partition if rec.partition is not None else call.partition
        self._touch(touched, call)
        self._push(call, rec, frame, now)

    def _push(self, call: CallState, rec: Record, frame, now: float) -> None:
        samples = to_analysis_rate(decode_payload(frame.payload, frame.encoding), frame.sample_rate)
        reason = call.audio[frame.leg].push(Chunk(frame.seq, frame.capture_ts, samples, rec.token))
        call.last_seen = now
        if reason:
            self.m.chunks_dropped.labels(reason).inc()
            if rec.token is not None:
                self._pending_acks.append(rec.token)
        else:
            self.m.chunks.labels(frame.leg).inc()

    def _expire(self, now: float, out: BatchResult, ending: list) -> None:
        for call_id in [c for c, held in self.orphans.items() if now - held[0][0] > self.s.start_grace_s]:
            for _, rec, frame in self.orphans.pop(call_id):
                self._dead(out, rec, "unknown_call", f"chunk seq {frame.seq} for call {call_id!r}: no start event within {self.s.start_grace_s:g} s")
            self.looked_up.discard(call_id)
        already = {c.call_id for c, _, _ in ending}
        for call in list(self.calls.values()):
            if call.call_id not in already and now - call.last_seen > self.s.inactivity_timeout_s:
                ending.append((call, "timeout", call.updated_at or now))
        while self.ended and now - next(iter(self.ended.values())) > self.s.ended_memory_s:
            self.ended.popitem(last=False)
        if self._pending_acks:
            out.acks.extend(self._pending_acks)
            self._pending_acks = []

    def expire(self) -> BatchResult:
        """Run timeouts with no new records (called by a timer)."""
        return self.process([])

    # -- analysis ----------------------------------------------------------------------------------
    def _analyse(self, calls: list[CallState], out: BatchResult) -> None:
        jobs: list[_StepJob] = []
        for call in calls:
            for leg in LEGS:
                audio, vad = call.audio[leg], call.vad[leg]
                for k in audio.complete_steps():
                    end = (k + 1) * self.hop
                    mask, level = vad.speech_mask(audio.audio(end - self.hop, end))
                    sc = call.scores[leg]
                    step_speech = int(mask.sum())
                    window_speech = step_speech + (sc.last_step_speech if self.window > self.hop else 0)
                    sc.last_step_speech = step_speech
                    scored = step_speech > 0 and window_speech >= self.min_window_speech_frames
                    jobs.append(_StepJob(call, leg, k, mask, level, audio.audio(end - self.window, end) if scored else None,
                                         audio.capture_ts_at(end - 1)))
                    call.scores[leg].pending_masks[k] = mask
                    audio.steps_done = k + 1
        scored = [j for j in jobs if j.window is not None]
        if scored:
            batch = np.stack([j.window for j in scored])
            t0 = time.perf_counter()
            emotions, sentiment = self.models.predict(batch)
            self.m.inference_seconds.labels("emotion+sentiment").observe(time.perf_counter() - t0)
            self.m.inference_batch.observe(len(scored))
            for j, probs, s in zip(scored, emotions, sentiment):
                j.emotions = {label: round(float(p), 4) for label, p in zip(self.labels, probs)}
                j.sentiment = float(s)
        for j in jobs:
            sc = j.call.scores[j.leg]
            sc.add_step(j.mask, j.level_db)
            # What the call-level step will need, frozen now: legs are paired later, maybe in another batch,
            # and by then this leg may have moved on. Saved with the state, so batching never changes a result.
            info: dict = {"speech": round(float(j.mask.mean()), 4), "cap": j.capture_end,
                          "pause": [round(x, 3) for x in pauses(j.mask, FRAME_S)],
                          "loud": round(sc.loudness_dbfs, 2) if j.mask.any() and sc.loudness_dbfs is not None else None}
            if j.emotions is not None:
                sc.add_scores((j.k + 1) * self.s.hop_s, j.emotions, j.sentiment)
                info.update(s=round(j.sentiment, 4), e=j.emotions, avg=round(sc.sentiment_avg, 4), ang=round(sc.anger_avg, 4),
                            start=None if sc.sentiment_start is None else round(sc.sentiment_start, 4))
            sc.pending_info[j.k] = info
            self.m.windows.labels(j.leg, "true" if j.emotions is not None else "false").inc()
            if j.capture_end is not None:
                out.step_capture_ts.append(j.capture_end)
        for call in calls:
            self._pair_steps(call, out, final=False)

    def _pair_steps(self, call: CallState, out: BatchResult, final: bool) -> None:
        """Advance call-level steps while both legs (or one leg and a lagging/absent other) have masks."""
        a_sc, c_sc = call.scores["agent"], call.scores["customer"]
        for sc in (a_sc, c_sc):
            for k in [k for k in sc.pending_masks if k < call.steps_done]:
                del sc.pending_masks[k]
                sc.pending_info.pop(k, None)
        while True:
            k = call.steps_done
            ma, mc = a_sc.pending_masks.get(k), c_sc.pending_masks.get(k)
            if ma is None and mc is None:
                return
            if ma is None or mc is None:
                have, missing = ("agent", "customer") if ma is not None else ("customer", "agent")
                lagging = call.audio[missing].steps_done + MAX_LEG_LAG_STEPS <= k
                if not (final or lagging):
                    return
                silent = np.zeros_like(ma if ma is not None else mc)
                ma, mc = (ma, silent) if ma is not None else (silent, mc)
            n = min(len(ma), len(mc))
            conv = call.conversation.step(ma[:n], mc[:n])
            a_sc.pending_masks.pop(k, None)
            c_sc.pending_masks.pop(k, None)
            info = {"agent": a_sc.pending_info.pop(k, None), "customer": c_sc.pending_info.pop(k, None)}
            call.steps_done = k + 1
            t = call.steps_done * self.s.hop_s
            cust = info["customer"]
            if cust and "avg" in cust:
                call.risk_basis = {"avg": cust["avg"], "ang": cust["ang"], "start": cust["start"]}
            metrics = self._rule_metrics(info, conv)
            ev_cfg = self._evidence_config()
            metrics.update(call.evidence.step(t, info, ev_cfg, self.s.hop_s))
            risk = self._risk(call, conv["silence_run_s"])
            metrics["risk"] = risk
            at = next((i["cap"] for i in info.values() if i and i["cap"] is not None), call.updated_at or self.clock())
            call.updated_at = at
            if conv["silence"] or conv["overtalk_step_s"] > 0:
                call.recent_marks.append((t, conv["silence"], 1 if conv["overtalk_step_s"] > 0 else 0))
            while call.recent_marks and call.recent_marks[0][0] <= t - SPARK_WINDOW_S:
                call.recent_marks.popleft()
            for leg, mask in (("agent", ma), ("customer", mc)):
                entry = {"t": f"{t:g}", "leg": leg, "speech": f"{mask.mean():.2f}", "silence": str(conv["silence"]),
                         "overtalk": f"{conv['overtalk_step_s']:.2f}"}
                i = info[leg]
                if i and "e" in i:
                    top = max(i["e"], key=i["e"].get)
                    entry.update(sentiment=f"{i['s']:.3f}", emotion=top, emotion_score=f"{i['e'][top]:.3f}")
                if i and i["loud"] is not None:
                    entry["loudness_dbfs"] = f"{i['loud']:.1f}"
                if f"{leg}_anger_evidence" in metrics:
                    entry["anger_evidence"] = f"{metrics[f'{leg}_anger_evidence']:.3f}"
                    entry["negative_evidence"] = f"{metrics[f'{leg}_negative_evidence']:.3f}"
                out.timeline.append((call.call_id, entry))
            if self.rules is not None:
                for alert in self.rules.evaluate(call.call_id, t, at, metrics, lambda m: call.evidence.details(ev_cfg).get(m)):
                    self._on_alert(call, alert, out)
                call.rules_state = self.rules.export_state(call.call_id)

    def _evidence_config(self) -> EvidenceConfig:
        """The rules file's ``evidence:`` section (hot-reloaded with the rules), or the defaults."""
        return DEFAULT_EVIDENCE if self.rules is None else self.rules.evidence

    @staticmethod
    def _rule_metrics(info: dict, conv: dict) -> dict[str, float]:
        m: dict[str, float] = {"silence_run_s": conv["silence_run_s"], "overtalk_step_s": conv["overtalk_step_s"]}
        for leg, i in info.items():
            if i is None:
                continue
            m[f"{leg}_speech"] = i["speech"]
            if "e" in i:
                m[f"{leg}_sentiment"] = i["s"]
                m[f"{leg}_sentiment_avg"] = i["avg"]
                for label, p in i["e"].items():
                    m[f"{leg}_{label}"] = p
        return m

    @staticmethod
    def _risk(call: CallState, silence_run_s: float) -> float:
        """Call risk 0..100 (README, "Conversation metrics"): weighted customer negativity, anger, sentiment drop,
        current silence, recent overtalk and open alerts, from the customer's scores as of the last paired step."""
        b = call.risk_basis
        neg = min(max(-(b.get("avg") or 0.0), 0.0), 1.0)
        drop = 0.0
        if b.get("start") is not None and b.get("avg") is not None:
            drop = min(max(b["start"] - b["avg"], 0.0), 1.0)
        silence = min(silence_run_s / 30.0, 1.0)
        overtalk = min(call.conversation.overtalk_recent_s / 5.0, 1.0)
        score = 0.35 * neg + 0.25 * min(b.get("ang", 0.0), 1.0) + 0.15 * drop + 0.10 * silence + 0.10 * overtalk + 0.05 * (call.alerts_open > 0)
        return round(100.0 * score, 1)

    def _on_alert(self, call: CallState, alert, out: BatchResult) -> None:
        out.alerts.append(alert)
        if alert.state == "open":
            call.alerts += 1
            call.alerts_open += 1
            if alert.rule not in call.alert_rules:
                call.alert_rules.append(alert.rule)
            call.alert_log.append({"alert_id": alert.alert_id, "rule": alert.rule, "t": alert.t, "evidence": alert.evidence})
            del call.alert_log[:-ALERT_LOG_KEEP]
            self.m.alerts.labels(alert.rule, alert.severity, call.meta.get("queue", "") or "unknown").inc()
        else:
            call.alerts_open = max(0, call.alerts_open - 1)

    # -- end of call -------------------------------------------------------------------------------
    def _finish(self, call: CallState, reason: str, ended_at: float, out: BatchResult) -> None:
        for leg in LEGS:
            call.audio[leg].flush_pending()
        self._analyse([call], out)
        self._pair_steps(call, out, final=True)
        call.status = "ended"
        summary = self._summary(call, reason, ended_at)
        out.summaries.append(summary)
        out.ended.append(call.call_id)
        for leg in LEGS:
            out.acks.extend(call.audio[leg].release_all())
        self.calls.pop(call.call_id, None)
        self.looked_up.discard(call.call_id)   # `ended` answers for it from now on, and is pruned
        self.ended[call.call_id] = self.clock()
        if self.rules is not None:
            self.rules.forget(call.call_id)
        self._count_end(call, summary)

    def _summary(self, call: CallState, reason: str, ended_at: float) -> dict:
        a, c = call.scores["agent"], call.scores["customer"]
        started = call.started_at or (ended_at - call.duration_s)
        duration = max(ended_at - started, call.duration_s) if reason == "event" else call.duration_s
        conv = call.conversation
        return {
            "call_id": call.call_id, **{k: call.meta.get(k, "") for k in ("agent_id", "queue", "campaign", "language", "direction")},
            "started_at": started, "ended_at": ended_at, "duration_s": round(duration, 2), "end_reason": reason,
            "agent_speech_s": round(a.speech_s, 2), "customer_speech_s": round(c.speech_s, 2),
            "agent_talk_ratio": _r(call.talk_ratio("agent")), "customer_talk_ratio": _r(call.talk_ratio("customer")),
            "silence_s": round(conv.silence_frames * FRAME_S, 2), "longest_silence_s": round(conv.longest_silence * FRAME_S, 2),
            "overtalk_s": round(conv.overtalk_frames * FRAME_S, 2),
            "interruptions_agent": conv.interruptions[0], "interruptions_customer": conv.interruptions[1],
            "turns_agent": conv.turns[0], "turns_customer": conv.turns[1],
            "customer_sentiment_start": _r(c.sentiment_start), "customer_sentiment_end": _r(c.sentiment_avg),
            "customer_sentiment_min": _r(c.sentiment_min), "customer_sentiment_mean": _r(c.sentiment_mean),
            "agent_sentiment_mean": _r(a.sentiment_mean),
            "agent_dominant_emotion": a.dominant_emotion, "customer_dominant_emotion": c.dominant_emotion,
            "alerts": call.alerts, "alert_rules": list(call.alert_rules),
            "audio_gap_s": round(sum(call.audio[leg].gap_s for leg in LEGS), 2),
        }

    def _count_end(self, call: CallState, s: dict) -> None:
        q, camp = s["queue"] or "unknown", s["campaign"] or "unknown"
        end = s["customer_sentiment_end"]
        outcome = "unknown" if end is None else "negative" if end < SENTIMENT_NEGATIVE_BELOW else "positive" if end > SENTIMENT_POSITIVE_ABOVE else "neutral"
        self.m.calls_ended.labels(q, camp, outcome).inc()
        self.m.handle_seconds.labels(q, camp).observe(s["duration_s"])
        self.m.silence_seconds.labels(q, camp).inc(s["silence_s"])
        self.m.overtalk_seconds.labels(q, camp).inc(s["overtalk_s"])
        self.m.duration_seconds.labels(q, camp).inc(s["duration_s"])
        if end is not None:
            self.m.sentiment_end.labels(q, camp).observe(end)
            if s["customer_sentiment_start"] is not None and end - s["customer_sentiment_start"] > SENTIMENT_IMPROVED_BY:
                self.m.sentiment_improved.labels(q, camp).inc()
        if self.s.agent_metrics:
            self.m.agent_calls_ended.labels(s["agent_id"] or "unknown", outcome).inc()

    # -- rendering ---------------------------------------------------------------------------------
    def _render(self, call: CallState) -> dict[str, str]:
        conv = call.conversation
        f: dict[str, str] = {
            "call_id": call.call_id, "status": call.status, "updated_at": f"{call.updated_at:.3f}",
            "duration_s": f"{call.duration_s:g}", "overtalk_s": f"{conv.overtalk_frames * FRAME_S:.2f}",
            "silence_s": f"{conv.silence_frames * FRAME_S:.2f}", "longest_silence_s": f"{conv.longest_silence * FRAME_S:.2f}",
            "silence_run_s": f"{conv.silence_run * FRAME_S:.2f}",
            "interruptions_agent": str(conv.interruptions[0]), "interruptions_customer": str(conv.interruptions[1]),
            "turns_agent": str(conv.turns[0]), "turns_customer": str(conv.turns[1]),
            "alerts_open": str(call.alerts_open), "alerts": str(call.alerts), "worker": self.s.worker_name,
            **{k: v for k, v in call.meta.items() if v},
        }
        if call.started_at:
            f["started_at"] = f"{call.started_at:.3f}"
        risk = self._risk(call, conv.silence_run * FRAME_S)
        f["risk"] = f"{risk:g}"
        for leg in LEGS:
            sc = call.scores[leg]
            p = f"{leg}_"
            f[p + "speech_s"] = f"{sc.speech_s:.2f}"
            f[p + "windows"] = str(sc.windows)
            tr = call.talk_ratio(leg)
            if tr is not None:
                f[p + "talk_ratio"] = f"{tr:.3f}"
            for name, val in (("sentiment", sc.sentiment), ("sentiment_avg", sc.sentiment_avg), ("sentiment_start", sc.sentiment_start),
                              ("sentiment_min", sc.sentiment_min), ("sentiment_trend", sc.sentiment_trend), ("loudness_dbfs", sc.loudness_dbfs)):
                if val is not None:
                    f[p + name] = f"{val:.3f}"
            # the dashboard's sparkline: (call time, sentiment) over the last minute, from the trend window
            f[p + "spark"] = _json([[round(t, 1), round(v, 3)] for t, v in sc.trend])
            if sc.emotions:
                top = max(sc.emotions, key=sc.emotions.get)
                f[p + "emotion"] = top
                f[p + "emotion_score"] = f"{sc.emotions[top]:.3f}"
                f[p + "emotions"] = _json(sc.emotions)
        f["alert_log"] = _json(call.alert_log)
        f["evidence"] = _json(call.evidence.details(self._evidence_config()))
        f["marks"] = _json({"silence": [m[0] for m in call.recent_marks if m[1]], "overtalk": [m[0] for m in call.recent_marks if m[2]]})
        f[STATE_FIELD] = call.to_state()
        return f


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)


def _json(d: dict) -> str:
    return json.dumps(d, separators=(",", ":"))
