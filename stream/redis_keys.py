"""The Redis key layout: the one place where key names are spelled.

Workers write these keys; the dashboard and tools read them. Inside ``call`` and ``timeline`` keys the call id is
written with ``%`` and ``:`` percent-encoded (``key_part``), so one call id can never collide with another's key. Every key starts with a configurable prefix
(default ``cp``) so several deployments can share one Redis.

| key | type | what | TTL |
|---|---|---|---|
| ``{p}:call:{call_id}`` | hash | live per-call metrics (flat fields, see ``CALL_FIELDS``) | ``active_ttl_s``, refreshed on write; ``ended_ttl_s`` after end |
| ``{p}:call:{call_id}:timeline`` | stream | one entry per analysed step (1 s) and leg | same as the hash; ``MAXLEN ~ timeline_maxlen`` |
| ``{p}:calls:active`` | sorted set | call ids of live calls, score = risk (0..100) | none; members removed at end or timeout |
| ``{p}:alerts`` | stream | every alert event (open and clear), all calls | ``MAXLEN ~ alerts_maxlen`` |
| ``{p}:alerts:acked`` | hash | alert id -> JSON {by, at} written by the dashboard's acknowledge | none |
| ``{p}:summary:{call_id}`` | string (JSON) | end-of-call summary | ``summary_ttl_s`` |
| ``{p}:summaries`` | sorted set | call ids of ended calls, score = end time (epoch s) | trimmed to the last day |
| ``{p}:kpi:{dimension}:{value}`` | hash | manager KPIs for one queue/campaign/agent: fields ``{window}.{kpi}`` | ``summary_ttl_s`` |
| ``{p}:kpis`` | set | ``{dimension}:{value}`` names that have a KPI hash | none |
| ``{p}:call:{call_id}:transcript`` | stream | one entry per transcript segment (redacted text, see ``TRANSCRIPT_FIELDS``) | as the call hash; ``MAXLEN ~ transcript_maxlen`` |
| ``{p}:call:{call_id}:transcriber`` | hash | the transcriber's per-call status, language, segment count and ``_state`` | as the call hash |
| ``{p}:writer:{id}`` | string | the number of a worker sink's last applied write transaction, read back when a reply is lost | one day, refreshed on write |
"""

from __future__ import annotations

DEFAULT_PREFIX = "cp"
LEGS = ("agent", "customer")

# Flat fields of the per-call hash. Per-leg fields are written as "{leg}_{field}".
CALL_FIELDS = (
    "call_id", "status", "started_at", "updated_at", "ended_at", "duration_s",
    "agent_id", "queue", "campaign", "language", "direction",
    "overtalk_s", "silence_s", "longest_silence_s", "interruptions_agent", "interruptions_customer",
    "risk", "alerts_open", "alerts", "worker", "silence_run_s", "turns_agent", "turns_customer",
    "marks",              # JSON {"silence": [t...], "overtalk": [t...]}: steps of the last minute, for the wall
)
LEG_FIELDS = (
    "sentiment",          # current window, -1..+1 (p_positive - p_negative)
    "sentiment_avg",      # exponentially weighted over ~30 s of speech
    "sentiment_start",    # mean of the first 30 s of speech
    "sentiment_min",      # lowest rolling value so far
    "sentiment_trend",    # slope over the last 60 s, per minute
    "emotion",            # dominant emotion of the current window
    "emotion_score",      # its probability
    "emotions",           # JSON {label: probability} for the current window
    "speech_s", "talk_ratio", "loudness_dbfs", "windows",
    "spark",              # JSON [[t, sentiment], ...] over the last minute, for the wall's sparklines
)
# Fields of a transcript stream entry (written by `callpulse transcriber`; text redacted before writing).
TRANSCRIPT_FIELDS = ("segment_id", "leg", "start", "end", "text", "language", "confidence", "final", "redactions", "cues", "at")
# Internal field holding the exact restorable state (derived numbers only, never audio).
STATE_FIELD = "_state"


def key_part(call_id: str) -> str:
    """A call id as it appears inside a per-call key: ``%`` and ``:`` percent-encoded, so no call id can name
    another call's key (the hash of call ``x:timeline`` would otherwise be the timeline stream of call ``x``).
    Ids without those characters are unchanged; field values and set members keep the raw id."""
    return call_id.replace("%", "%25").replace(":", "%3A")


class Keys:
    """Key builder bound to a prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    def call(self, call_id: str) -> str:
        return f"{self.prefix}:call:{key_part(call_id)}"

    def timeline(self, call_id: str) -> str:
        return f"{self.prefix}:call:{key_part(call_id)}:timeline"

    def transcript(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}:transcript"

    def transcriber(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}:transcriber"

    @property
    def active(self) -> str:
        return f"{self.prefix}:calls:active"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}:alerts"

    @property
    def alerts_acked(self) -> str:
        return f"{self.prefix}:alerts:acked"

    def summary(self, call_id: str) -> str:
        return f"{self.prefix}:summary:{call_id}"

    @property
    def summaries(self) -> str:
        return f"{self.prefix}:summaries"

    def kpi(self, dimension: str, value: str) -> str:
        return f"{self.prefix}:kpi:{dimension}:{value}"

    def writer(self, writer_id: str) -> str:
        return f"{self.prefix}:writer:{writer_id}"

    @property
    def kpis(self) -> str:
        return f"{self.prefix}:kpis"
