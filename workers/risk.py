"""Call risk 0..100 (README, "Conversation metrics")."""

from __future__ import annotations

from .call_state import CallState

SILENCE_FULL_S = 30.0    # a non-talk run this long counts fully
OVERTALK_FULL_S = 5.0    # this much overtalk in the recent window counts fully


def call_risk(call: CallState, silence_run_s: float) -> float:
    """Weighted customer negativity, anger, sentiment drop, current silence, recent overtalk and open alerts,
    from the customer's scores as of the last paired step."""
    b = call.risk_basis
    neg = min(max(-(b.get("avg") or 0.0), 0.0), 1.0)
    drop = 0.0
    if b.get("start") is not None and b.get("avg") is not None:
        drop = min(max(b["start"] - b["avg"], 0.0), 1.0)
    silence = min(silence_run_s / SILENCE_FULL_S, 1.0)
    overtalk = min(call.conversation.overtalk_recent_s / OVERTALK_FULL_S, 1.0)
    score = 0.35 * neg + 0.25 * min(b.get("ang", 0.0), 1.0) + 0.15 * drop + 0.10 * silence + 0.10 * overtalk + 0.05 * (call.alerts_open > 0)
    return round(100.0 * score, 1)
