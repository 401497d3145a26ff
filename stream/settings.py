"""Configuration from the environment (prefix ``CALLPULSE_``), one frozen object per process."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting is also an environment variable: ``CALLPULSE_`` + the name in upper case."""

    model_config = SettingsConfigDict(env_prefix="CALLPULSE_", frozen=True, extra="ignore")

    # Where the real servers are. The demo and tests start embedded ones and fill these in.
    bootstrap_servers: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "cp"

    # Kafka security (production clusters): PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_ssl_cafile: str = ""

    # Kafka / Faust
    app_id: str = "callpulse"
    partitions: int = Field(8, ge=1)
    broker_session_timeout_s: float = 6.0   # short: the embedded broker's first join waits about half of it
    broker_heartbeat_interval_s: float = 2.0
    commit_interval_s: float = 1.0
    batch_max_messages: int = Field(512, ge=1)
    batch_within_s: float = Field(0.05, gt=0)
    # the worker's Kafka fetches wait for this much data (or FETCH_MAX_WAIT_MS, 50 ms): fewer, larger batches
    fetch_min_bytes: int = Field(65_536, ge=1, le=1 << 20)
    worker_name: str = ""
    # glibc's mmap threshold for the worker (workers.malloc_tuning); 0 keeps glibc's adaptive one
    malloc_mmap_threshold_bytes: int = Field(1 << 20, ge=0, le=32 << 20)
    # the young generation of Python's garbage collector, after freezing the start-up objects (workers.gc_tuning);
    # 0 keeps Python's defaults (700, nothing frozen)
    gc_gen0_threshold: int = Field(10_000, ge=0, le=1_000_000)
    # The worker's output producer: idempotent where the broker supports it. "auto" probes at start
    # (Apache Kafka: yes; the embedded tansu: no, its InitProducerId fails through aiokafka).
    producer_idempotence: Literal["auto", "true", "false"] = "auto"

    # Analysis
    window_s: float = Field(2.0, ge=1.0, le=8.0)
    hop_s: float = Field(1.0, gt=0)
    reorder_horizon_s: float = Field(1.0, ge=0)
    max_payload_bytes: int = 64_000
    min_window_speech_s: float = 0.4      # score a window only when it holds this much speech
    model_dir: str = ""                    # a folder of models; empty: the shipped ones of ``model_profile``
    # the shipped models: "default", the three-network ensemble; "light", one of its networks, half the models'
    # CPU per window (onnx_models/MODEL_CARD.md, "Light profile", for what it costs in accuracy)
    model_profile: Literal["default", "light"] = "default"
    onnx_threads: int = 1

    # Call lifecycle
    start_grace_s: float = 10.0            # chunks of a call with no start event wait this long, then go to the DLQ
    # After an end event, wait this long for audio still in flight. It must outlast a partition-leader failover
    # (Kafka fences a dead broker after broker.session.timeout.ms, 9 s by default): the call's audio stalls
    # meanwhile while its end event, on another leader, may arrive (measured with 3 s: the call lost its end).
    end_grace_s: float = 15.0
    inactivity_timeout_s: float = 60.0     # a call with no audio for this long is ended (reason "timeout")
    ended_memory_s: float = 3600.0         # remember ended calls this long to reject late chunks

    # Redis
    active_ttl_s: int = 3600
    ended_ttl_s: int = 86_400
    summary_ttl_s: int = 7 * 86_400
    timeline_maxlen: int = 7200
    alerts_maxlen: int = 10_000

    # Alerts, KPIs, metrics
    rules_path: str = ""                   # empty: workers/default_rules.yaml
    kpi_interval_s: float = 5.0
    agent_metrics: bool = False            # per-agent Prometheus series (cardinality = number of agents)
    metrics_port: int = 9100
    metrics_host: str = "127.0.0.1"
    liveness_stuck_after_s: float = 60.0   # /healthz fails when one core run lasts longer (a batch takes well under 1 s)

    @model_validator(mode="after")
    def _one_model_source(self) -> "Settings":
        if self.model_dir and self.model_profile != "default":
            raise ValueError(f"CALLPULSE_MODEL_DIR ({self.model_dir!r}) and CALLPULSE_MODEL_PROFILE ({self.model_profile!r}) "
                             "both choose the models: set one of them")
        return self


def kafka_python_options(s: Settings) -> dict:
    """Security options for kafka-python clients (admin, producer) from the settings."""
    opts: dict = {"security_protocol": s.kafka_security_protocol}
    if s.kafka_security_protocol.startswith("SASL"):
        opts.update(sasl_mechanism=s.kafka_sasl_mechanism, sasl_plain_username=s.kafka_sasl_username, sasl_plain_password=s.kafka_sasl_password)
    if s.kafka_ssl_cafile and s.kafka_security_protocol.endswith("SSL"):
        opts["ssl_cafile"] = s.kafka_ssl_cafile
    return opts


def aiokafka_options(s: Settings) -> dict:
    """The same security options for a plain aiokafka client."""
    import ssl
    opts: dict = {"security_protocol": s.kafka_security_protocol}
    if s.kafka_security_protocol.startswith("SASL"):
        opts.update(sasl_mechanism=s.kafka_sasl_mechanism, sasl_plain_username=s.kafka_sasl_username, sasl_plain_password=s.kafka_sasl_password)
    if s.kafka_security_protocol.endswith("SSL"):
        opts["ssl_context"] = ssl.create_default_context(cafile=s.kafka_ssl_cafile or None)
    return opts
