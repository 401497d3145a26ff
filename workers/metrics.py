"""Every Prometheus object of a worker, declared once. Labels are bounded: never a call id."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
INFERENCE_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
HANDLE_BUCKETS_S = (30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600)
SENTIMENT_BUCKETS = (-0.8, -0.6, -0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        r = registry
        self.chunks = Counter("callpulse_chunks_total", "Audio chunks accepted", ["leg"], registry=r)
        self.chunks_dropped = Counter("callpulse_chunks_dropped_total", "Chunks that brought nothing new", ["reason"], registry=r)
        self.bad_input = Counter("callpulse_bad_input_total", "Messages rejected as bad input", ["reason"], registry=r)
        self.redelivered = Counter("callpulse_redelivered_messages_total", "Messages of ended calls read again (Kafka redelivery): acknowledged, no effect", registry=r)
        self.dead_letters = Counter("callpulse_dead_letters_total", "Messages written to the dead-letter topic", ["reason"], registry=r)
        self.windows = Counter("callpulse_windows_total", "Analysis steps per leg, by whether the models ran", ["leg", "speech"], registry=r)
        self.gap_seconds = Counter("callpulse_audio_gap_seconds_total", "Audio lost in transit, filled with silence", registry=r)
        self.inference_seconds = Histogram("callpulse_inference_seconds", "One batched model run", ["model"], buckets=INFERENCE_BUCKETS_S, registry=r)
        self.inference_batch = Histogram("callpulse_inference_batch_windows", "Windows per batched model run", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r)
        self.batch_seconds = Histogram("callpulse_batch_processing_seconds", "Core processing of one consumer batch", buckets=LATENCY_BUCKETS_S, registry=r)
        self.e2e_latency = Histogram("callpulse_end_to_end_latency_seconds", "Capture time of a step's last sample to its Redis write", buckets=LATENCY_BUCKETS_S, registry=r)
        self.redis_write_seconds = Histogram("callpulse_redis_write_seconds", "One pipelined Redis write", buckets=LATENCY_BUCKETS_S, registry=r)
        self.redis_errors = Counter("callpulse_redis_errors_total", "Failed Redis round trips (retried)", registry=r)
        self.redis_replies_lost = Counter("callpulse_redis_replies_lost_total", "Write transactions Redis applied whose reply was lost (not written again)", registry=r)
        self.active_calls = Gauge("callpulse_active_calls", "Calls held by this worker", registry=r)
        self.consumer_lag = Gauge("callpulse_consumer_lag_messages", "High-water mark minus position", ["partition"], registry=r)
        self.calls_started = Counter("callpulse_calls_started_total", "Calls started", registry=r)
        self.calls_restored = Counter("callpulse_calls_restored_total", "Calls whose state was restored from Redis", registry=r)
        self.alerts = Counter("callpulse_alerts_total", "Alerts opened", ["rule", "severity", "queue"], registry=r)
        self.calls_ended = Counter("callpulse_calls_ended_total", "Calls ended", ["queue", "campaign", "outcome"], registry=r)
        self.handle_seconds = Histogram("callpulse_call_handle_seconds", "Handle time of ended calls", ["queue", "campaign"], buckets=HANDLE_BUCKETS_S, registry=r)
        self.sentiment_end = Histogram("callpulse_call_customer_sentiment_end", "Customer sentiment at call end", ["queue", "campaign"], buckets=SENTIMENT_BUCKETS, registry=r)
        self.sentiment_improved = Counter("callpulse_call_sentiment_improved_total", "Ended calls whose customer sentiment improved", ["queue", "campaign"], registry=r)
        self.silence_seconds = Counter("callpulse_call_silence_seconds_total", "Non-talk time of ended calls", ["queue", "campaign"], registry=r)
        self.overtalk_seconds = Counter("callpulse_call_overtalk_seconds_total", "Overtalk time of ended calls", ["queue", "campaign"], registry=r)
        self.duration_seconds = Counter("callpulse_call_duration_seconds_total", "Duration of ended calls", ["queue", "campaign"], registry=r)
        self.last_batch_age = Gauge("callpulse_last_batch_age_seconds", "Seconds since the core last finished a batch or timer run", registry=r)
        self.core_run_seconds = Gauge("callpulse_core_run_seconds", "How long the core's current run has lasted (0 when idle)", registry=r)
        self.live_sentiment = Gauge("callpulse_live_customer_sentiment", "Mean current customer sentiment over live calls", ["queue"], registry=r)
        self.agent_calls_ended = Counter("callpulse_agent_calls_ended_total", "Calls ended per agent (only when per-agent metrics are on)", ["agent", "outcome"], registry=r)
        # The transcription tier (callpulse transcriber); RTF = rate(compute_seconds) / rate(audio_seconds).
        self.transcriber_calls = Gauge("callpulse_transcriber_calls", "Calls held by this transcriber", registry=r)
        self.transcriber_queue = Gauge("callpulse_transcriber_queue_utterances", "Finished utterances of the current batch not yet transcribed", registry=r)
        self.transcriber_wait = Histogram("callpulse_transcriber_wait_seconds", "End of an utterance's speech to the start of its transcription", buckets=LATENCY_BUCKETS_S, registry=r)
        self.transcriber_seconds = Histogram("callpulse_transcriber_inference_seconds", "One batched recogniser call", buckets=LATENCY_BUCKETS_S, registry=r)
        self.transcriber_audio_seconds = Counter("callpulse_transcriber_audio_seconds_total", "Utterance audio transcribed", registry=r)
        self.transcriber_compute_seconds = Counter("callpulse_transcriber_compute_seconds_total", "Wall time spent in the recogniser", registry=r)
        self.transcriber_errors = Counter("callpulse_transcriber_errors_total", "Utterances lost to a recogniser failure", registry=r)
        self.transcriber_segments = Counter("callpulse_transcriber_segments_total", "Transcript segments written", ["leg"], registry=r)
        self.transcriber_redactions = Counter("callpulse_transcriber_redactions_total", "Numbers and e-mail addresses redacted", registry=r)
        self.transcript_latency = Histogram("callpulse_transcript_latency_seconds", "End of an utterance's speech (capture time) to its Redis write", buckets=LATENCY_BUCKETS_S, registry=r)


METRICS = WorkerMetrics()
