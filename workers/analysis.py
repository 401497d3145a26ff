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
from .vad import FRAME_S, speech_masks, speech_share


class ModelRunner(Protocol):
    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(slots=True)
class _StepJob:
    call: CallState
    leg: str
    k: int
    mask: np.ndarray
    level_db: np.ndarray
    scored: bool              # its window holds enough speech for the models
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
        # labelled children looked up once: ``labels()`` per step costs more than the increment
        self._window_counters = {(leg, scored): metrics.windows.labels(leg, "true" if scored else "false")
                                 for leg in LEGS for scored in (True, False)}

    def analyse(self, calls: list[CallState], out: BatchResult) -> None:
        """Every complete step of these calls: VAD mask, scores when the window holds speech, and the frozen
        per-step info (``pending_masks``/``pending_info``) that leg pairing consumes."""
        jobs = self._vad_steps(calls)
        self._score([j for j in jobs if j.scored])
        counts = dict.fromkeys(self._window_counters, 0)
        for j in jobs:
            sc = j.call.scores[j.leg]
            sc.add_step(j.mask, j.level_db)
            # What the call-level step will need, frozen now: legs are paired later, maybe in another batch,
            # and by then this leg may have moved on. Saved with the state, so batching never changes a result.
            info: dict = {"speech": round(speech_share(j.mask), 4), "cap": j.capture_end,
                          "pause": [round(x, 3) for x in pauses(j.mask, FRAME_S)],
                          "loud": round(sc.loudness_dbfs, 2) if j.mask.any() and sc.loudness_dbfs is not None else None}
            if j.emotions is not None:
                sc.add_scores((j.k + 1) * self.s.hop_s, j.emotions, j.sentiment)
                info.update(s=round(j.sentiment, 4), e=j.emotions, avg=round(sc.sentiment_avg, 4), ang=round(sc.anger_avg, 4),
                            start=None if sc.sentiment_start is None else round(sc.sentiment_start, 4))
            sc.pending_info[j.k] = info
            counts[j.leg, j.emotions is not None] += 1
            if j.capture_end is not None:
                out.step_capture_ts.append(j.capture_end)
        for key, n in counts.items():
            if n:
                self._window_counters[key].inc(n)

    def _vad_steps(self, calls: list[CallState]) -> list[_StepJob]:
        """Every complete step of these calls' legs, in (call, leg, step) order. The VAD runs for all legs at once,
        one round per step index (a leg's next step depends on its previous one)."""
        legs = [(call, leg, call.audio[leg].complete_steps()) for call in calls for leg in LEGS]
        legs = [entry for entry in legs if len(entry[2])]
        per_leg: list[list[_StepJob]] = [[] for _ in legs]
        r = 0
        while live := [i for i, entry in enumerate(legs) if len(entry[2]) > r]:
            batch = np.empty((len(live), self.hop), np.float32)
            for row, i in enumerate(live):
                call, leg, steps = legs[i]
                end = (steps[r] + 1) * self.hop
                call.audio[leg].audio(end - self.hop, end, out=batch[row])
            masks, levels = speech_masks([legs[i][0].vad[legs[i][1]] for i in live], batch)
            for row, i in enumerate(live):
                call, leg, steps = legs[i]
                per_leg[i].append(self._step_job(call, leg, steps[r], masks[row], levels[row]))
            r += 1
        return [job for jobs in per_leg for job in jobs]

    def _step_job(self, call: CallState, leg: str, k: int, mask: np.ndarray, level: np.ndarray) -> _StepJob:
        audio, sc = call.audio[leg], call.scores[leg]
        end = (k + 1) * self.hop
        step_speech = int(np.count_nonzero(mask))
        window_speech = step_speech + (sc.last_step_speech if self.window > self.hop else 0)
        sc.last_step_speech = step_speech
        scored = step_speech > 0 and window_speech >= self.min_window_speech_frames
        job = _StepJob(call, leg, k, mask, level, scored, audio.capture_ts_at(end - 1))
        sc.pending_masks[k] = mask
        audio.steps_done = k + 1
        return job

    def _score(self, scored: list[_StepJob]) -> None:
        if not scored:
            return
        # Cut now, straight into the models' input: nothing releases audio before the batch's pairing is done.
        batch = np.empty((len(scored), self.window), np.float32)
        for row, j in enumerate(scored):
            end = (j.k + 1) * self.hop
            j.call.audio[j.leg].audio(end - self.window, end, out=batch[row])
        t0 = time.perf_counter()
        emotions, sentiment = self.models.predict(batch)
        self.m.inference_seconds.labels("emotion+sentiment").observe(time.perf_counter() - t0)
        self.m.inference_batch.observe(len(scored))
        for j, probs, s in zip(scored, emotions.tolist(), sentiment.tolist()):
            j.emotions = {label: round(p, 4) for label, p in zip(self.labels, probs)}
            j.sentiment = s
