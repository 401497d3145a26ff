"""The live call hash (``cp:call:{id}``): every field the dashboard reads, plus the restorable ``_state``."""

from __future__ import annotations

from stream.redis_keys import LEGS, STATE_FIELD

from .call_state import CallState
from .jsonfmt import compact_json
from .risk import call_risk
from .vad import FRAME_S


def render_call(call: CallState, worker_name: str) -> dict[str, str]:
    conv = call.conversation
    f: dict[str, str] = {
        "call_id": call.call_id, "status": call.status, "updated_at": f"{call.updated_at:.3f}",
        "duration_s": f"{call.duration_s:g}", "overtalk_s": f"{conv.overtalk_frames * FRAME_S:.2f}",
        "silence_s": f"{conv.silence_frames * FRAME_S:.2f}", "longest_silence_s": f"{conv.longest_silence * FRAME_S:.2f}",
        "silence_run_s": f"{conv.silence_run * FRAME_S:.2f}",
        "interruptions_agent": str(conv.interruptions[0]), "interruptions_customer": str(conv.interruptions[1]),
        "turns_agent": str(conv.turns[0]), "turns_customer": str(conv.turns[1]),
        "alerts_open": str(call.alerts_open), "alerts": str(call.alerts), "worker": worker_name,
        **{k: v for k, v in call.meta.items() if v},
    }
    if call.started_at:
        f["started_at"] = f"{call.started_at:.3f}"
    f["risk"] = f"{call_risk(call, conv.silence_run * FRAME_S):g}"
    for leg in LEGS:
        f.update(_leg_fields(call, leg))
    f["alert_log"] = compact_json(call.alert_log)
    f["evidence"] = call.evidence.details_json()
    f["marks"] = compact_json({"silence": [m[0] for m in call.recent_marks if m[1]], "overtalk": [m[0] for m in call.recent_marks if m[2]]})
    f[STATE_FIELD] = call.to_state()
    return f


def _leg_fields(call: CallState, leg: str) -> dict[str, str]:
    sc = call.scores[leg]
    p = f"{leg}_"
    f = {p + "speech_s": f"{sc.speech_s:.2f}", p + "windows": str(sc.windows)}
    tr = call.talk_ratio(leg)
    if tr is not None:
        f[p + "talk_ratio"] = f"{tr:.3f}"
    for name, val in (("sentiment", sc.sentiment), ("sentiment_avg", sc.sentiment_avg), ("sentiment_start", sc.sentiment_start),
                      ("sentiment_min", sc.sentiment_min), ("sentiment_trend", sc.sentiment_trend), ("loudness_dbfs", sc.loudness_dbfs)):
        if val is not None:
            f[p + name] = f"{val:.3f}"
    # the dashboard's sparkline: (call time, sentiment) over the last minute, from the trend window
    f[p + "spark"] = sc.from_trend("spark", lambda: compact_json([[round(t, 1), round(v, 3)] for t, v in sc.trend]))
    if sc.emotions:
        top = max(sc.emotions, key=sc.emotions.get)
        f[p + "emotion"] = top
        f[p + "emotion_score"] = f"{sc.emotions[top]:.3f}"
        f[p + "emotions"] = compact_json(sc.emotions)
    return f
