"""``callpulse transcriber``: the Faust agent of the transcription tier.

Its own consumer group (``CALLPULSE_TRANSCRIBER_APP_ID``) on calls.audio + calls.events, so it scales on its own
lag and never slows the emotion workers. The Kafka side is the emotion worker's own
(``workers.batch_agent.BatchAgent``): micro-batches, the core (VAD cutting and the recogniser, seconds of CPU)
in one executor thread so Kafka heartbeats go on, a lock serialising batches, timers and rebalances, messages
acknowledged only after their effects are written, and the backlog marks that keep its waits from ending a
call whose audio is still unread.
"""

from __future__ import annotations

import logging
import socket

import faust
import redis.asyncio as aioredis

from stream import topics
from stream.app import create_app, declare_topics, raw_topic
from stream.settings import Settings
from workers.batch_agent import BatchAgent
from workers.cues import DEFAULT_CUES, CueSet
from workers.health import Liveness, start_http_endpoint
from workers.metrics import METRICS, WorkerMetrics

from .core import TranscriptCore
from .settings import TranscriberSettings
from .sinks import TranscriptKafkaSink, TranscriptRedisSink

log = logging.getLogger(__name__)


class TranscriberWorker(BatchAgent):
    def __init__(self, settings: Settings, tx: TranscriberSettings, recognizer, metrics: WorkerMetrics = METRICS,
                 liveness: Liveness | None = None) -> None:
        settings = settings.model_copy(update={"app_id": tx.transcriber_app_id,
                                               "batch_max_messages": tx.transcriber_batch_max_messages,
                                               "worker_name": settings.worker_name or socket.gethostname()})
        self.tx = tx
        app = create_app(settings)
        self.topics = declare_topics(app, settings)
        transcripts = raw_topic(app, topics.TRANSCRIPTS, partitions=settings.partitions)
        cues = CueSet.load(tx.cues_path or DEFAULT_CUES)
        self.redis = aioredis.from_url(settings.redis_url)
        super().__init__(app, self.topics["input"], settings,
                         TranscriptCore(settings, recognizer, cues, metrics, default_language=tx.transcriber_language),
                         TranscriptRedisSink(self.redis, settings, metrics, tx.transcript_maxlen),
                         TranscriptKafkaSink(transcripts, self.topics["alerts"], self.topics["dlq"], metrics),
                         metrics, liveness or Liveness(settings.liveness_stuck_after_s),
                         agent_name="callpulse.transcribe", thread_name="callpulse-transcriber")


def run_transcriber(settings: Settings, tx: TranscriberSettings, metrics_port: int | None = None, loglevel: str = "info") -> int:
    if not tx.transcripts_enabled:
        log.warning("CALLPULSE_TRANSCRIPTS_ENABLED is false: the transcriber does not run")
        print("transcripts are disabled (CALLPULSE_TRANSCRIPTS_ENABLED=false); not starting the transcriber")
        return 0
    from .recognizer import Recognizer
    recognizer = Recognizer(threads=tx.transcriber_threads)   # verifies the model's sha256 before anything starts
    port = tx.transcriber_metrics_port if metrics_port is None else metrics_port
    liveness = Liveness(settings.liveness_stuck_after_s)
    if port:
        start_http_endpoint(port, settings.metrics_host, liveness)
    worker = TranscriberWorker(settings, tx, recognizer, liveness=liveness)
    faust.Worker(worker.app, loglevel=loglevel, quiet=True).execute_from_commandline()
    return 0
