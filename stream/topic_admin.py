"""Creating and checking the callpulse topics (``callpulse topics create``, and the worker's start-up check).

Faust's group leader is elected through a one-partition topic, ``{app_id}-__assignor-__leader``; a cluster that
does not auto-create topics (Apache Kafka with ``auto.create.topics.enable=false``, as production should be)
must have it created here, or no worker ever becomes leader and the manager KPIs are never computed.
"""

from __future__ import annotations

import logging
import time

from . import topics as names
from .producer import quiet_kafka_client

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_MS = 10_000


class TopicsError(RuntimeError):
    """The topics are missing or do not fit together; the message says what to run."""


def leader_topic(app_id: str) -> str:
    return f"{app_id}-__assignor-__leader"


def connect_admin(bootstrap_servers: str, timeout_s: float = CONNECT_TIMEOUT_S, **kafka_options):
    """A kafka-python admin client, or a ``ConnectionError`` with one clear line after ``timeout_s``."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    with quiet_kafka_client():
        while time.monotonic() < deadline:
            try:
                return KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","), client_id="callpulse-admin",
                                        request_timeout_ms=REQUEST_TIMEOUT_MS,
                                        bootstrap_timeout_ms=int(max(1.0, deadline - time.monotonic()) * 1000),
                                        **kafka_options)
            except KafkaError as exc:
                last = exc
                time.sleep(0.2)
    raise ConnectionError(f"no Kafka broker reachable at {bootstrap_servers} within {timeout_s:g} s ({type(last).__name__ if last else 'timeout'})")


def create_topics(bootstrap_servers: str, partitions: int = names.DEFAULT_PARTITIONS, replication_factor: int = 1,
                  min_insync_replicas: int = 0, app_id: str = "callpulse", timeout_s: float = CONNECT_TIMEOUT_S,
                  **kafka_options) -> list[str]:
    """Create every callpulse topic with ``partitions`` partitions and the group-leader topic; topics that
    exist are left as they are. ``min_insync_replicas`` 0 keeps the broker's default. Returns the names
    created. Must run before any client asks for the topics (tansu auto-creates unknown topics with 4)."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    if replication_factor < 1 or partitions < 1 or min_insync_replicas > replication_factor:
        raise ValueError(f"need partitions >= 1 and 1 <= min.insync.replicas <= replication factor, got "
                         f"partitions={partitions}, replication_factor={replication_factor}, min_insync_replicas={min_insync_replicas}")
    admin = connect_admin(bootstrap_servers, timeout_s, **kafka_options)
    try:
        existing = set(admin.list_topics())
        configs = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas else {}
        wanted = [(name, partitions) for name in names.ALL] + [(leader_topic(app_id), 1)]
        new = [NewTopic(name, n, replication_factor, topic_configs=configs) for name, n in wanted if name not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in new]
    finally:
        admin.close()


def partition_counts(bootstrap_servers: str, topic_names: list[str], timeout_s: float = CONNECT_TIMEOUT_S, **kafka_options) -> dict[str, int]:
    """Partitions per existing topic among ``topic_names`` (missing topics are left out)."""
    admin = connect_admin(bootstrap_servers, timeout_s, **kafka_options)
    try:
        existing = set(admin.list_topics())
        present = [t for t in topic_names if t in existing]
        described = admin.describe_topics(present) if present else []
        return {d.get("name", d.get("topic")): len(d["partitions"]) for d in described if not d.get("error_code")}
    finally:
        admin.close()


def check_topics(bootstrap_servers: str, app_id: str = "callpulse", timeout_s: float = CONNECT_TIMEOUT_S, **kafka_options) -> int:
    """The worker's start-up check: ``calls.audio`` and ``calls.events`` exist with the same partition count
    (a call's audio and events must meet in one worker), and so does every other callpulse topic. Returns the
    partition count; raises ``TopicsError`` saying what is wrong and what to run."""
    wanted = [*names.ALL, leader_topic(app_id)]
    counts = partition_counts(bootstrap_servers, wanted, timeout_s, **kafka_options)
    fix = f"run: callpulse topics create --partitions N --bootstrap-servers {bootstrap_servers}"
    missing = [t for t in wanted if t not in counts]
    if missing:
        raise TopicsError(f"topic(s) {', '.join(missing)} missing on {bootstrap_servers}; {fix}")
    audio, events = counts[names.AUDIO], counts[names.EVENTS]
    if audio != events:
        raise TopicsError(f"{names.AUDIO} has {audio} partitions but {names.EVENTS} has {events}: they must be equal, "
                          "or a call's audio and events reach different workers; recreate them with the same --partitions")
    return audio
