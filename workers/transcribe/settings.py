"""The transcription tier's own settings (env prefix ``CALLPULSE_``, like ``stream.settings.Settings``, whose
broker, Redis, lifecycle and TTL settings it shares)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TranscriberSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLPULSE_", frozen=True, extra="ignore")

    transcripts_enabled: bool = True             # false: no transcriber runs, nothing is transcribed or stored
    transcriber_app_id: str = "callpulse-transcriber"   # its own consumer group, scaled on its own
    transcriber_threads: int = Field(1, ge=1)    # CTranslate2 intra-op threads (scale with processes)
    transcriber_metrics_port: int = 9101
    transcriber_language: str = "it"             # when the call's start event has no language
    transcriber_batch_max_messages: int = Field(256, ge=1)
    transcript_maxlen: int = Field(2000, ge=10)  # entries kept per call's transcript stream
    cues_path: str = ""                          # empty: workers/default_cues.yaml
