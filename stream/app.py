"""The Faust app and its topic declarations."""

from __future__ import annotations

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from . import topics
from .settings import Settings

FETCH_MAX_WAIT_MS = 50


def _patch_fetch_wait() -> None:
    """faust-streaming 0.15 hard-codes ``fetch_max_wait_ms=1500`` for its consumer. Brokers may hold a fetch
    that long when some partitions are idle (measured on the embedded broker: p50 360 ms, p90 690 ms of
    added delivery latency; with 50 ms: p50 3 ms). A live-call product cannot spend its latency budget there.
    It also leaves ``fetch_min_bytes`` at 1, which faust does not expose: set from ``CALLPULSE_FETCH_MIN_BYTES``."""
    cls = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(cls, "_callpulse_patched", False):
        return
    original = cls._create_worker_consumer

    def create(self, transport):
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        consumer._fetch_min_bytes = getattr(self.app, "callpulse_fetch_min_bytes", 1)
        return consumer

    cls._create_worker_consumer = create
    cls._callpulse_patched = True


_patch_fetch_wait()


def _patch_producer_idempotence() -> None:
    """faust enables aiokafka's idempotent producer only inside exactly-once transactions. callpulse wants it
    for its outputs (alerts, summaries, dead letters) wherever the broker supports it: ``create_app`` marks
    the app, and the producer adds ``enable_idempotence`` for marked apps."""
    cls = faust_aiokafka.Producer
    if getattr(cls, "_callpulse_patched", False):
        return
    original = cls._settings_extra

    def settings_extra(self):
        extra = dict(original(self))
        if getattr(self.app, "callpulse_idempotent_producer", False):
            extra["enable_idempotence"] = True
        return extra

    cls._settings_extra = settings_extra
    cls._callpulse_patched = True


_patch_producer_idempotence()


async def broker_supports_idempotence(settings: Settings, timeout_s: float = 10.0) -> bool:
    """Whether aiokafka (faust's client) can get a producer id: Apache Kafka yes, the embedded tansu no
    (its InitProducerId answers UnknownError through aiokafka)."""
    import asyncio

    import aiokafka
    import aiokafka.errors

    from .settings import aiokafka_options
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers.split(","), acks="all",
                                         enable_idempotence=True, client_id="callpulse-probe", **aiokafka_options(settings))
    try:
        await asyncio.wait_for(producer.start(), timeout_s)
        await asyncio.wait_for(producer.client.force_metadata_update(), timeout_s)
        await asyncio.wait_for(producer._sender._maybe_wait_for_pid(), timeout_s)
        return producer._txn_manager is not None and producer._txn_manager.has_pid()
    except (aiokafka.errors.KafkaError, asyncio.TimeoutError, OSError):
        return False
    finally:
        await producer.stop()


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{h.strip()}" for h in bootstrap_servers.split(",") if h.strip()]


def broker_credentials(s: Settings):
    """Faust credentials for SASL and/or TLS clusters (None for PLAINTEXT)."""
    import ssl
    context = ssl.create_default_context(cafile=s.kafka_ssl_cafile or None) if s.kafka_security_protocol.endswith("SSL") else None
    if s.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=s.kafka_sasl_username, password=s.kafka_sasl_password,
                                     mechanism=s.kafka_sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings.bootstrap_servers),
        broker_credentials=broker_credentials(settings),
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_allow_declare=False,          # topics are created explicitly (`callpulse topics create`)
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        producer_acks=-1,                   # all in-sync replicas (min.insync.replicas) before an output counts
        # Bounded buffers: memory should grow with live calls, not with how far the fetcher reads ahead.
        consumer_max_fetch_size=256 * 1024,
        stream_buffer_maxsize=1024,
        broker_max_poll_records=1000,
    )
    app.callpulse_idempotent_producer = settings.producer_idempotence == "true"
    app.callpulse_fetch_min_bytes = settings.fetch_min_bytes
    return app


def raw_topic(app: faust.App, *names: str, partitions: int | None = None) -> faust.TopicT:
    return app.topic(*names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=partitions, allow_empty=True)


def declare_topics(app: faust.App, settings: Settings) -> dict[str, faust.TopicT]:
    p = settings.partitions
    return {
        "input": raw_topic(app, topics.AUDIO, topics.EVENTS, partitions=p),
        "alerts": raw_topic(app, topics.ALERTS, partitions=p),
        "summaries": raw_topic(app, topics.SUMMARIES, partitions=p),
        "dlq": raw_topic(app, topics.AUDIO_DLQ, partitions=p),
    }
