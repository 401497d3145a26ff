"""The Faust app and its topic declarations."""

from __future__ import annotations

import faust

from . import topics
from .settings import Settings


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{h.strip()}" for h in bootstrap_servers.split(",") if h.strip()]


def create_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=broker_urls(settings.bootstrap_servers),
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
        producer_acks=1,
    )


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
