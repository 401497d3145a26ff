"""A small producer API for gateways, replay, the benchmark and tests."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import numpy as np
from kafka import KafkaProducer

from workers.audio import encode_alaw, encode_mulaw, encode_pcm16

from . import topics
from .events import CallEvent
from .frame import AudioFrame, encode_frame

ENCODERS = {"mulaw": encode_mulaw, "alaw": encode_alaw, "pcm_s16le": encode_pcm16}


CONNECT_TIMEOUT_S = 10.0
log = logging.getLogger(__name__)


def native_crc32c() -> bool:
    """Whether kafka-python checksums record batches in C (the ``crc32c`` package). Without it every batch's
    CRC-32C runs in pure Python, about 0.5 ms per 4 kB audio chunk: a producer core's worth at 2000 chunks/s."""
    from kafka.record import util
    return getattr(util, "crc32c_c", None) is not None


@contextmanager
def quiet_kafka_client():
    """kafka-python logs a warning per failed connection attempt; while connecting, the caller reports one
    clear line instead."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class CallProducer:
    """Send call events and audio chunks. Keys are call ids, so a call's messages share a partition.

    ``acks=all`` with idempotence: a retried send is neither lost nor written twice, and with
    ``min.insync.replicas=2`` a write survives the loss of its leader (kafka-python's idempotent producer works
    on Apache Kafka and on the embedded tansu alike). Raises ``ConnectionError`` with one clear line when no
    broker answers within ``connect_timeout_s``."""

    def __init__(self, bootstrap_servers: str, linger_ms: int = 5, connect_timeout_s: float = CONNECT_TIMEOUT_S, **kafka_options) -> None:
        from kafka.errors import KafkaError
        if not native_crc32c():
            log.warning("kafka-python has no compiled CRC-32C (pip install crc32c): each audio chunk costs about "
                        "0.5 ms of producer CPU")
        try:
            with quiet_kafka_client():
                self.producer = KafkaProducer(
                    bootstrap_servers=bootstrap_servers.split(","), acks="all", enable_idempotence=True, linger_ms=linger_ms,
                    client_id="callpulse-producer", bootstrap_timeout_ms=int(connect_timeout_s * 1000), **kafka_options,
                )
        except KafkaError as exc:
            raise ConnectionError(f"no Kafka broker reachable at {bootstrap_servers} within {connect_timeout_s:g} s "
                                  f"({type(exc).__name__})") from None

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
