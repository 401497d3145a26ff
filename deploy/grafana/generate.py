"""Grafana dashboards as code: `python deploy/grafana/generate.py` rewrites dashboards/*.json.

Plain dictionaries in Grafana's dashboard JSON model (schema 39); CI checks the committed JSON is what this
script produces and that every metric it queries exists."""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("dashboards")
DS = {"type": "prometheus", "uid": "prometheus"}


def panel(pid: int, title: str, exprs: list[tuple[str, str]], x: int, y: int, unit: str = "short", w: int = 12, h: int = 8, kind: str = "timeseries") -> dict:
    return {
        "id": pid, "type": kind, "title": title, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit, "color": {"mode": "palette-classic-by-name"}}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": legend} for i, (e, legend) in enumerate(exprs)],
    }


def dashboard(uid: str, title: str, panels: list[dict], variables: list[dict] | None = None) -> dict:
    return {"uid": uid, "title": title, "tags": ["callpulse"], "timezone": "utc", "schemaVersion": 39, "version": 1,
            "refresh": "10s", "time": {"from": "now-3h", "to": "now"}, "panels": panels,
            "templating": {"list": variables or []}, "annotations": {"list": []}, "editable": True}


def queue_var() -> dict:
    return {"name": "queue", "type": "query", "datasource": DS, "query": "label_values(callpulse_calls_ended_total, queue)",
            "includeAll": True, "multi": True, "refresh": 2, "current": {"text": "All", "value": "$__all"}}


def operations() -> dict:
    # The transcriber exports the same families (lag of its own group, the same dead letters): workers only here.
    W = '{job="callpulse-worker"}'
    p = [
        panel(1, "Chunks in / s", [("sum by (leg) (rate(callpulse_chunks_total[1m]))", "{{leg}}")], 0, 0),
        panel(2, "Analysed steps / s", [("sum by (leg, speech) (rate(callpulse_windows_total[1m]))", "{{leg}} scored={{speech}}")], 12, 0),
        panel(3, "End-to-end latency (capture to Redis)", [
            ("histogram_quantile(0.5, sum by (le) (rate(callpulse_end_to_end_latency_seconds_bucket[5m])))", "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(callpulse_end_to_end_latency_seconds_bucket[5m])))", "p99")], 0, 8, "s"),
        panel(4, "Inference time per batch", [
            ("histogram_quantile(0.99, sum by (le) (rate(callpulse_inference_seconds_bucket[5m])))", "p99"),
            ("sum(rate(callpulse_inference_seconds_sum[5m])) / sum(rate(callpulse_inference_seconds_count[5m]))", "mean")], 12, 8, "s"),
        panel(5, "Consumer lag (messages)", [(f"sum by (partition) (callpulse_consumer_lag_messages{W})", "partition {{partition}}")], 0, 16),
        panel(6, "Active calls", [("sum(callpulse_active_calls)", "calls"), ("sum by (instance) (callpulse_active_calls)", "{{instance}}")], 12, 16),
        panel(7, "Bad input by reason / s", [("sum by (reason) (rate(callpulse_bad_input_total[5m]))", "{{reason}}")], 0, 24),
        panel(8, "Dead letters / s", [(f"sum by (reason) (rate(callpulse_dead_letters_total{W}[5m]))", "{{reason}}"),
                                      ("sum by (reason) (rate(callpulse_chunks_dropped_total[5m]))", "dropped {{reason}}")], 12, 24),
    ]
    return dashboard("callpulse-ops", "callpulse — operations", p)


def kpis() -> dict:
    q = '{queue=~"$queue"}'
    p = [
        panel(1, "Live customer sentiment by queue", [(f"avg by (queue) (callpulse_live_customer_sentiment{q})", "{{queue}}")], 0, 0),
        panel(2, "Share of calls ending negative (1 h)", [(f"callpulse:negative_share:1h{q}", "{{queue}} / {{campaign}}")], 12, 0, "percentunit"),
        panel(3, "Alerts per 100 calls (1 h)", [(f"callpulse:alerts_per_100_calls:1h{q}", "{{queue}}")], 0, 8),
        panel(4, "Average handle time (15 min)", [(f"callpulse:aht_seconds:15m{q}", "{{queue}} / {{campaign}}")], 12, 8, "s"),
        panel(5, "Silence ratio and overtalk rate (1 h)", [(f"callpulse:silence_ratio:1h{q}", "silence {{queue}}"),
                                                          (f"callpulse:overtalk_rate:1h{q}", "overtalk {{queue}}")], 0, 16, "percentunit"),
        panel(6, "Calls handled per minute", [(f"callpulse:calls_ended:rate15m{q}", "{{queue}} / {{campaign}}")], 12, 16),
        panel(7, "Customer sentiment at call end (mean, 1 h)", [(f"callpulse:sentiment_end_mean:1h{q}", "{{queue}} / {{campaign}}"),
                                                               (f"callpulse:improved_share:1h{q}", "improved share {{queue}}")], 0, 24),
        panel(8, "Alerts by rule / h", [("sum by (rule) (increase(callpulse_alerts_total[1h]))", "{{rule}}")], 12, 24),
    ]
    return dashboard("callpulse-kpis", "callpulse — manager KPIs", p, [queue_var()])


def transcriber() -> dict:
    """The transcription tier (`callpulse transcriber`, job callpulse-transcriber)."""
    j = '{job="callpulse-transcriber"}'
    p = [
        panel(1, "Real-time factor (recogniser s per s of speech)", [("callpulse:transcriber_rtf:5m", "{{instance}}")], 0, 0),
        panel(2, "Recogniser busy share (1 = one core saturated; latency target at 0.5)",
              [("callpulse:transcriber_busy_ratio:5m", "{{instance}}")], 12, 0, "percentunit"),
        panel(3, "Transcript latency, end of speech to Redis", [
            ("callpulse:transcript_latency_seconds:p50_5m", "p50"),
            ("callpulse:transcript_latency_seconds:p99_5m", "p99"),
            (f"histogram_quantile(0.99, sum by (le) (rate(callpulse_transcriber_wait_seconds_bucket{j}[5m])))", "p99 wait before the recogniser")], 0, 8, "s"),
        panel(4, "Utterance queue and calls held", [(f"sum by (instance) (callpulse_transcriber_queue_utterances{j})", "queue {{instance}}"),
                                                    (f"sum by (instance) (callpulse_transcriber_calls{j})", "calls {{instance}}")], 12, 8),
        panel(5, "Consumer lag of callpulse-transcriber (messages)", [(f"sum by (partition) (callpulse_consumer_lag_messages{j})", "partition {{partition}}")], 0, 16),
        panel(6, "Segments / s", [(f"sum by (leg) (rate(callpulse_transcriber_segments_total{j}[5m]))", "{{leg}}")], 12, 16),
        panel(7, "Recogniser errors and redactions / min", [
            (f"sum(rate(callpulse_transcriber_errors_total{j}[5m])) * 60", "utterances lost to errors"),
            (f"sum(rate(callpulse_transcriber_redactions_total{j}[5m])) * 60", "numbers and e-mails redacted")], 0, 24),
        panel(8, "Transcribers up", [(f"up{j}", "{{instance}}")], 12, 24),
    ]
    return dashboard("callpulse-transcriber", "callpulse — transcription tier", p)


DASHBOARDS = {"operations.json": operations, "kpis.json": kpis, "transcriber.json": transcriber}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
