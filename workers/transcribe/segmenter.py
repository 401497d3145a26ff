"""Per-leg utterance cutting with the workers' VAD (``workers.vad.VadState``), resumable exactly.

The leg's audio (reordered by ``workers.leg_audio.LegAudio``) is read in steps of ``STEP_S``. An utterance opens
at the first speech frame (minus ``PREROLL_S``) and closes after ``END_SILENCE_S`` without speech, or at
``MAX_UTTERANCE_S`` (a long turn is cut; its next part opens at the next speech frame).

Resuming: between utterances the cutter is *clean* (nothing open). The *anchor* is the first step of the open
utterance, or the next step when nothing is open, with the VAD state as it was at that step's start. A restarted
transcriber re-reads the leg's chunks from the anchor (their Kafka messages are held until then) and repeats
exactly the same decisions, so each utterance is cut once, with the same boundaries, whatever the restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workers.audio import ANALYSIS_RATE_HZ
from workers.leg_audio import LegAudio
from workers.vad import FRAME_SAMPLES, VadState

STEP_S = 0.5                  # VAD step: the floor adapts per step (see workers.vad), and ends are found per step
END_SILENCE_S = 0.6           # this much non-speech (after the VAD's 160 ms hangover) ends an utterance
MAX_UTTERANCE_S = 12.0        # a longer turn is cut here, so text appears at least this often
MIN_SPEECH_S = 0.3            # shorter bursts (clicks, coughs, "mm") are not transcribed
PREROLL_S = 0.2               # audio kept before the first speech frame (soft onsets)
STEP = int(STEP_S * ANALYSIS_RATE_HZ)
PREROLL = int(PREROLL_S * ANALYSIS_RATE_HZ)


@dataclass(slots=True)
class Utterance:
    leg: str
    start: int           # absolute sample position at ANALYSIS_RATE_HZ, from the call's answer
    end: int             # exclusive
    speech_end: int      # end of the last speech frame (the moment the speaker stopped)
    speech_s: float
    audio: np.ndarray    # float32 [end - start] at ANALYSIS_RATE_HZ
    speech_end_ts: float | None   # capture time of speech_end (epoch s), for the latency metric
    cut: bool            # True when closed by MAX_UTTERANCE_S rather than by silence


@dataclass
class LegCutter:
    leg: str
    audio: LegAudio
    vad: VadState = field(default_factory=VadState)
    open_start: int | None = None
    last_speech_end: int = 0
    speech_frames: int = 0
    anchor_step: int = 0
    anchor_vad: dict = field(default_factory=lambda: VadState().to_dict())

    @classmethod
    def new(cls, leg: str, horizon_s: float) -> "LegCutter":
        return cls(leg, LegAudio(STEP, STEP + PREROLL, horizon_s))

    def cut(self, final: bool = False) -> list[Utterance]:
        """Run the VAD over every complete step; return the utterances that closed. ``final``: the call ended,
        close whatever is open (a last partial step included)."""
        out: list[Utterance] = []
        a = self.audio
        for k in a.complete_steps():
            self._step(k, (k + 1) * STEP, out)
        if final:
            tail = a.next_pos - a.steps_done * STEP
            if tail >= FRAME_SAMPLES:
                self._step(a.steps_done, a.steps_done * STEP + tail // FRAME_SAMPLES * FRAME_SAMPLES, out)
            if self.open_start is not None:
                self._close(max(self.last_speech_end, self.open_start), out, cut=False)
        return out

    def _step(self, k: int, end: int, out: list[Utterance]) -> None:
        start = k * STEP
        before = self.vad.to_dict()
        mask, _ = self.vad.speech_mask(self.audio.audio(start, end))
        self.audio.steps_done = k + 1
        for i in np.flatnonzero(mask):
            pos = start + int(i) * FRAME_SAMPLES
            if self.open_start is None:
                self.open_start = max(pos - PREROLL, 0)
                self.speech_frames = 0
                self.anchor_step, self.anchor_vad = k, before
            self.speech_frames += 1
            self.last_speech_end = pos + FRAME_SAMPLES
        if self.open_start is not None:
            silent = end - self.last_speech_end
            if silent >= END_SILENCE_S * ANALYSIS_RATE_HZ:
                self._close(min(self.last_speech_end + PREROLL, end), out, cut=False)
            elif end - self.open_start >= MAX_UTTERANCE_S * ANALYSIS_RATE_HZ:
                self._close(end, out, cut=True)
        if self.open_start is None:
            self.anchor_step, self.anchor_vad = k + 1, self.vad.to_dict()

    def _close(self, end: int, out: list[Utterance], cut: bool) -> None:
        start = self.open_start
        speech_s = self.speech_frames * FRAME_SAMPLES / ANALYSIS_RATE_HZ
        self.open_start = None
        if speech_s >= MIN_SPEECH_S and end > start:
            speech_end = min(self.last_speech_end, end)
            out.append(Utterance(self.leg, start, end, speech_end, round(speech_s, 2), self.audio.audio(start, end),
                                 self.audio.capture_ts_at(speech_end - 1), cut))

    def keep_from(self) -> int:
        """First sample position a restart from the anchor needs."""
        return max(self.anchor_step * STEP - PREROLL, 0)

    def release(self) -> list:
        """Tokens of chunks that a restart from the anchor no longer needs."""
        keep = self.keep_from()
        tokens = []
        segs = self.audio.segments
        while segs and segs[0].end <= keep:
            seg = segs.popleft()
            if seg.token is not None:
                tokens.append(seg.token)
        return tokens

    # -- persistence -------------------------------------------------------------------------------
    def state(self) -> dict:
        """Where a restart resumes: the first chunk still buffered (it covers ``keep_from``), the anchor step and
        the VAD state at its start. Only derived numbers: never audio."""
        return {"audio": self.audio.anchor(), "step": self.anchor_step, "vad": self.anchor_vad}

    @classmethod
    def from_state(cls, leg: str, horizon_s: float, d: dict) -> "LegCutter":
        anchor = dict(d["audio"])
        anchor["steps"] = int(d["step"])
        audio = LegAudio.from_anchor(STEP, STEP + PREROLL, horizon_s, anchor)
        vad = VadState.from_dict(d["vad"])
        return cls(leg, audio, vad, anchor_step=int(d["step"]), anchor_vad=dict(d["vad"]))
