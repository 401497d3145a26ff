"""End of call: the summary written to ``calls.summaries`` and Redis, and the per-queue Prometheus counters
that the KPI recording rules aggregate."""

from __future__ import annotations

from stream.redis_keys import LEGS

from .call_state import CallState
from .metrics import WorkerMetrics
from .vad import FRAME_S

SENTIMENT_NEGATIVE_BELOW = -0.2
SENTIMENT_POSITIVE_ABOVE = 0.2
SENTIMENT_IMPROVED_BY = 0.2


def call_summary(call: CallState, reason: str, ended_at: float) -> dict:
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


def count_call_end(m: WorkerMetrics, s: dict, agent_metrics: bool) -> None:
    q, camp = s["queue"] or "unknown", s["campaign"] or "unknown"
    end = s["customer_sentiment_end"]
    outcome = "unknown" if end is None else "negative" if end < SENTIMENT_NEGATIVE_BELOW else "positive" if end > SENTIMENT_POSITIVE_ABOVE else "neutral"
    m.calls_ended.labels(q, camp, outcome).inc()
    m.handle_seconds.labels(q, camp).observe(s["duration_s"])
    m.silence_seconds.labels(q, camp).inc(s["silence_s"])
    m.overtalk_seconds.labels(q, camp).inc(s["overtalk_s"])
    m.duration_seconds.labels(q, camp).inc(s["duration_s"])
    if end is not None:
        m.sentiment_end.labels(q, camp).observe(end)
        if s["customer_sentiment_start"] is not None and end - s["customer_sentiment_start"] > SENTIMENT_IMPROVED_BY:
            m.sentiment_improved.labels(q, camp).inc()
    if agent_metrics:
        m.agent_calls_ended.labels(s["agent_id"] or "unknown", outcome).inc()


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)
