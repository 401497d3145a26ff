"""The emotion worker: the only place where Kafka, the pure core (``workers.pipeline``) and the sinks meet.

The Kafka side (micro-batches, the core in its own thread under a lock, acknowledgements after the writes,
rebalances, lag and backlog marks, the event loop's heartbeat for ``/healthz``) is
``workers.batch_agent.BatchAgent``, shared with the transcriber; this module adds the models, the alert rules
(reloaded once a second), the manager-KPI job on the leader and the live-sentiment gauge.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from statistics import fmean

import faust
import redis.asyncio as aioredis

from stream.app import create_app, declare_topics
from stream.settings import Settings

from .batch_agent import BatchAgent
from .health import Liveness, start_http_endpoint
from .inference import Models
from .kpi_job import make_kpi_job
from .gc_tuning import tune_gc
from .malloc_tuning import fix_mmap_threshold
from .metrics import METRICS, WorkerMetrics
from .pipeline import Pipeline
from .redis_pack import one_pass_packing
from .rules import RuleEngine, RuleSet
from .sinks import KafkaSink, RedisSink

log = logging.getLogger(__name__)


class Worker(BatchAgent):
    def __init__(self, settings: Settings, metrics: WorkerMetrics = METRICS, app: faust.App | None = None,
                 liveness: Liveness | None = None) -> None:
        if not settings.worker_name:
            settings = settings.model_copy(update={"worker_name": socket.gethostname()})
        liveness = liveness or Liveness(settings.liveness_stuck_after_s)
        app = app or create_app(settings)
        self.topics = declare_topics(app, settings)
        models = Models.for_settings(settings)
        self.rules = _load_rules(settings)
        self.pipeline = Pipeline(settings, models, models.emotion.labels, metrics, self.rules)
        self.redis = one_pass_packing(aioredis.from_url(settings.redis_url))
        super().__init__(app, self.topics["input"], settings, self.pipeline, RedisSink(self.redis, settings, metrics),
                         KafkaSink(self.topics["alerts"], self.topics["summaries"], self.topics["dlq"], metrics),
                         metrics, liveness, agent_name="callpulse.analyse", thread_name="callpulse-core")
        app.timer(settings.kpi_interval_s, on_leader=True)(make_kpi_job(self.redis, settings, metrics))

    def before_tick(self) -> None:
        self.rules.maybe_reload()

    def after_tick(self) -> None:
        by_queue: dict[str, list[float]] = {}
        for call in self.pipeline.calls.values():
            s = call.scores["customer"].sentiment_avg
            if s is not None:
                by_queue.setdefault(call.meta.get("queue") or "unknown", []).append(s)
        for queue, values in by_queue.items():
            self.m.live_sentiment.labels(queue).set(fmean(values))


def _load_rules(settings: Settings) -> RuleEngine:
    path = settings.rules_path or str(Path(__file__).with_name("default_rules.yaml"))
    return RuleEngine(RuleSet.load(path), path, step_s=settings.hop_s)


def run_worker(settings: Settings, metrics_port: int | None = None, loglevel: str = "info") -> None:
    """Start the metrics and health endpoint (``/metrics``, ``/healthz``) and run a worker until interrupted."""
    fix_mmap_threshold(settings.malloc_mmap_threshold_bytes)
    port = settings.metrics_port if metrics_port is None else metrics_port
    liveness = Liveness(settings.liveness_stuck_after_s)
    if port:
        start_http_endpoint(port, settings.metrics_host, liveness)
    worker = Worker(settings, liveness=liveness)
    tune_gc(settings.gc_gen0_threshold)
    faust.Worker(worker.app, loglevel=loglevel, quiet=True).execute_from_commandline()
