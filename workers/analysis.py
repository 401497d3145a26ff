"""Analysis: each leg's complete 1 s steps through the VAD, and the ready windows of ALL calls through the
models in one batched call; per-leg scores are updated and each step's call-level inputs are frozen."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Protocol

import numpy as np

from stream.redis_keys import LEGS
from stream.settings import Settings

from .audio import ANALYSIS_RATE_HZ
from .batch import BatchResult
from .call_state import CallState
from .evidence import pauses
from .metrics import WorkerMetrics
from .vad import FRAME_S


class ModelRunner(Protocol):
    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(slots=True)
class _StepJob:
    call: CallState
    leg: str
    k: int
    mask: np.ndarray
    level_db: np.ndarray
    window: np.ndarray | None
    capture_end: float | None
    emotions: dict[str, float] | None = None
    sentiment: float | None = None


class Analyser:
    def __init__(self, settings: Settings, models: ModelRunner, emotion_labels: Iterable[str], metrics: WorkerMetrics) -> None:
        self.s = settings
        self.models = models
        self.labels = tuple(emotion_labels)
        self.m = metrics
        self.hop = int(round(settings.hop_s * ANALYSIS_RATE_HZ))
        self.window = int(round(settings.window_s * ANALYSIS_RATE_HZ))
        self.min_window_speech_frames = int(settings.min_window_speech_s / FRAME_S)

    def analyse(self, calls: list[CallState], out: BatchResult) -> None:
        """Every complete step of these calls: VAD mask, scores when the window holds speech, and the frozen
        per-step info (``pending_masks``/``pending_info``) that leg pairing consumes."""
        jobs = [job for call in calls for leg in LEGS for job in self._steps(call, leg)]
        self._score([j for j in jobs if j.window is not None])
        for j in jobs:
            sc = j.call.scores[j.leg]
            sc.add_step(j.mask, j.level_db)
            # What the call-level step will need, frozen now: legs are paired later, maybe in another batch,
            # and by then this leg may have moved on. Saved with the state, so batching never changes a result.
            info: dict = {"speech": round(float(j.mask.mean()), 4), "cap": j.capture_end,
                          "pause": [round(x, 3) for x in pauses(j.mask, FRAME_S)],
                          "loud": round(sc.loudness_dbfs, 2) if j.mask.any() and sc.loudness_dbfs is not None else None}
            if j.emotions is not None:
                sc.add_scores((j.k + 1) * self.s.hop_s, j.emotions, j.sentiment)
                info.update(s=round(j.sentiment, 4), e=j.emotions, avg=round(sc.sentiment_avg, 4), ang=round(sc.anger_avg, 4),
                            start=None if sc.sentiment_start is None else round(sc.sentiment_start, 4))
            sc.pending_info[j.k] = info
            self.m.windows.labels(j.leg, "true" if j.emotions is not None else "false").inc()
            if j.capture_end is not None:
                out.step_capture_ts.append(j.capture_end)

    def _steps(self, call: CallState, leg: str) -> list[_StepJob]:
        audio, vad, sc = call.audio[leg], call.vad[leg], call.scores[leg]
        jobs = []
        for k in audio.complete_steps():
            end = (k + 1) * self.hop
            mask, level = vad.speech_mask(audio.audio(end - self.hop, end))
            step_speech = int(mask.sum())
            window_speech = step_speech + (sc.last_step_speech if self.window > self.hop else 0)
            sc.last_step_speech = step_speech
            scored = step_speech > 0 and window_speech >= self.min_window_speech_frames
            jobs.append(_StepJob(call, leg, k, mask, level, audio.audio(end - self.window, end) if scored else None,
                                 audio.capture_ts_at(end - 1)))
            sc.pending_masks[k] = mask
            audio.steps_done = k + 1
        return jobs

    def _score(self, scored: list[_StepJob]) -> None:
        if not scored:
            return
        batch = np.stack([j.window for j in scored])
        t0 = time.perf_counter()
        emotions, sentiment = self.models.predict(batch)
        self.m.inference_seconds.labels("emotion+sentiment").observe(time.perf_counter() - t0)
        self.m.inference_batch.observe(len(scored))
        for j, probs, s in zip(scored, emotions, sentiment):
            j.emotions = {label: round(float(p), 4) for label, p in zip(self.labels, probs)}
            j.sentiment = float(s)
