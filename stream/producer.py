"""A small producer API for gateways, replay, the benchmark and tests."""

from __future__ import annotations

import time

import numpy as np
from kafka import KafkaProducer

from workers.audio import encode_alaw, encode_mulaw, encode_pcm16

from . import topics
from .events import CallEvent
from .frame import AudioFrame, encode_frame

ENCODERS = {"mulaw": encode_mulaw, "alaw": encode_alaw, "pcm_s16le": encode_pcm16}


class CallProducer:
    """Send call events and audio chunks. Keys are call ids, so a call's messages share a partition."""

    def __init__(self, bootstrap_servers: str, linger_ms: int = 5, **kafka_options) -> None:
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers.split(","), acks=1, linger_ms=linger_ms,
            enable_idempotence=False,  # the embedded broker has no idempotent producers; chunks carry seq anyway
            client_id="callpulse-producer", **kafka_options,
        )

    def start_call(self, call_id: str, ts: float | None = None, **metadata: str) -> None:
        ev = CallEvent(type="start", call_id=call_id, ts=time.time() if ts is None else ts, **metadata)
        self.producer.send(topics.EVENTS, key=call_id.encode(), value=ev.to_bytes())

    def end_call(self, call_id: str, ts: float | None = None) -> None:
        ev = CallEvent(type="end", call_id=call_id, ts=time.time() if ts is None else ts)
        self.producer.send(topics.EVENTS, key=call_id.encode(), value=ev.to_bytes())

    def send_frame(self, frame: AudioFrame) -> None:
        self.producer.send(topics.AUDIO, key=frame.call_id.encode(), value=encode_frame(frame))

    def send_audio(self, call_id: str, leg: str, seq: int, capture_ts: float, samples: np.ndarray,
                   sample_rate: int = 8000, encoding: str = "mulaw") -> None:
        """Encode float32 samples in [-1, 1] and send them as one chunk."""
        payload = ENCODERS[encoding](samples)
        self.send_frame(AudioFrame(call_id, leg, seq, capture_ts, sample_rate, encoding, payload))

    def send_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.producer.send(topic, key=key, value=value)

    def flush(self, timeout: float | None = 30) -> None:
        self.producer.flush(timeout)

    def close(self) -> None:
        self.producer.flush(30)
        self.producer.close(5)

    def __enter__(self) -> "CallProducer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
