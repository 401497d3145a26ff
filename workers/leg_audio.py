"""Per-leg audio reassembly: reorder and de-duplicate chunks by sequence number, fill lost chunks with
silence, and cut the stream into analysis steps and windows.

Positions are absolute sample indices at ``ANALYSIS_RATE_HZ`` from the start of the call. A chunk's Kafka
message is *held* (not acknowledged) while any of its samples may still be needed for a future window, so
that a restarted worker re-reads from the committed offset every chunk it needs. The *anchor* (first held
chunk and its position) is saved with the derived state; after a restart, chunks before it are duplicates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .audio import ANALYSIS_RATE_HZ, to_pcm16

MAX_GAP_S = 10.0       # a hole longer than this is clamped (clock jumps must not create hours of silence)
MAX_PENDING_CHUNKS = 256
PCM_SCALE = 32768.0


@dataclass(slots=True)
class Chunk:
    seq: int
    capture_ts: float
    samples: np.ndarray  # at ANALYSIS_RATE_HZ: int16 PCM, float32 in [-1, 1], or uint8 codes with ``table``
    token: Any = None    # opaque handle the caller acknowledges once the chunk is released
    table: np.ndarray | None = None   # float32[256] that decodes uint8 G.711 codes (kept encoded: half of int16)


@dataclass(slots=True)
class Segment:
    start: int           # absolute sample position
    samples: np.ndarray  # int16 PCM, or uint8 G.711 codes decoded by ``table``: live calls hold a lot of these
    capture_ts: float
    seq: int | None      # None for a gap filled with silence
    token: Any = None
    table: np.ndarray | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


@dataclass
class LegAudio:
    hop: int                     # samples per step
    window: int                  # samples per model window (>= hop)
    horizon_s: float = 1.0       # wait this much newer audio for a missing chunk before declaring it lost
    next_seq: int = 0
    next_pos: int = 0
    next_ts: float | None = None
    steps_done: int = 0
    gap_s: float = 0.0
    pending: dict[int, Chunk] = field(default_factory=dict)
    segments: deque[Segment] = field(default_factory=deque)

    def reset(self) -> None:
        self.next_seq = self.next_pos = self.steps_done = 0
        self.next_ts = None
        self.gap_s = 0.0
        self.pending.clear()
        self.segments.clear()

    # -- input ---------------------------------------------------------------------------------
    def push(self, chunk: Chunk) -> str | None:
        """Accept a chunk. Returns a drop reason ('duplicate' or 'stale') when it brings nothing new;
        the caller then acknowledges its token at once."""
        if chunk.seq < self.next_seq:
            return "stale"
        if chunk.seq in self.pending:
            return "duplicate"
        self.pending[chunk.seq] = chunk
        self._drain()
        return None

    def _drain(self, give_up: bool = False) -> None:
        """Append every chunk that is next in sequence; skip a hole once it is lost (or at once with ``give_up``).
        Each pass either appends a chunk or moves ``next_seq`` up to the oldest pending one, so this ends."""
        while self.pending:
            chunk = self.pending.pop(self.next_seq, None)
            if chunk is not None:
                self._append(chunk)
                continue
            if not (give_up or self._hole_is_lost()):
                return
            first = min(self.pending)
            nxt = self.pending[first]
            missing = first - self.next_seq
            if self.next_ts is None:
                gap = 0.0
            else:
                gap = min(max(nxt.capture_ts - self.next_ts, 0.0), MAX_GAP_S)
            n = int(round(gap * ANALYSIS_RATE_HZ))
            if n:
                self.segments.append(Segment(self.next_pos, np.zeros(n, np.int16), self.next_ts or nxt.capture_ts, None))
                self.next_pos += n
                self.gap_s += n / ANALYSIS_RATE_HZ
            self.next_seq += missing

    def _hole_is_lost(self) -> bool:
        if len(self.pending) > MAX_PENDING_CHUNKS:
            return True
        newest = max(self.pending.values(), key=lambda c: c.seq)
        oldest = min(self.pending.values(), key=lambda c: c.seq)
        newest_end = newest.capture_ts + len(newest.samples) / ANALYSIS_RATE_HZ
        return newest_end - oldest.capture_ts > self.horizon_s

    def _append(self, chunk: Chunk) -> None:
        if chunk.table is not None or chunk.samples.dtype == np.int16:
            samples = chunk.samples
        else:
            samples = to_pcm16(chunk.samples)
        self.segments.append(Segment(self.next_pos, samples, chunk.capture_ts, chunk.seq, chunk.token, chunk.table))
        self.next_pos += len(chunk.samples)
        self.next_seq = chunk.seq + 1
        self.next_ts = chunk.capture_ts + len(chunk.samples) / ANALYSIS_RATE_HZ

    def flush_pending(self) -> None:
        """At the end of a call: give up waiting for any missing chunk. Decided by sequence alone, never by
        capture times: a gateway clock that stepped back must not keep a hole open (it once looped forever)."""
        self._drain(give_up=True)

    # -- steps and windows ---------------------------------------------------------------------
    def complete_steps(self) -> range:
        """Indices of steps whose audio is complete and not yet analysed."""
        return range(self.steps_done, self.next_pos // self.hop)

    def audio(self, start: int, end: int, out: np.ndarray | None = None) -> np.ndarray:
        """Samples [start, end) as float32, into ``out`` (float32, length ``end - start``) when given; positions
        outside the buffered audio are zeros. Segments are contiguous, so only the two ends can be uncovered."""
        segments = self.segments
        if out is None:
            out = np.zeros(end - start, np.float32)
        elif not segments or segments[0].start > start or segments[-1].end < end:
            out.fill(0.0)
        for seg in segments:
            if seg.end <= start:
                continue
            if seg.start >= end:
                break
            a, b = max(seg.start, start), min(seg.end, end)
            part, dst = seg.samples[a - seg.start:b - seg.start], out[a - start:b - start]
            if seg.table is None:
                dst[:] = part
                dst *= 1.0 / PCM_SCALE
            else:
                seg.table.take(part, out=dst, mode="clip")   # codes are < 256: "clip" only skips numpy's bounds buffer
        return out

    def capture_ts_at(self, pos: int) -> float | None:
        """Capture time of the sample at ``pos`` (interpolated within its chunk)."""
        for seg in reversed(self.segments):
            if seg.start <= pos:
                return seg.capture_ts + (pos - seg.start) / ANALYSIS_RATE_HZ
        return None

    def release(self) -> list[Any]:
        """Drop segments no future window needs; return their tokens for acknowledgement."""
        keep_from = (self.steps_done + 1) * self.hop - self.window
        tokens = []
        while self.segments and self.segments[0].end <= keep_from:
            seg = self.segments.popleft()
            if seg.token is not None:
                tokens.append(seg.token)
        return tokens

    def release_all(self) -> list[Any]:
        tokens = [s.token for s in self.segments if s.token is not None]
        tokens += [c.token for c in self.pending.values() if c.token is not None]
        self.segments.clear()
        self.pending.clear()
        return tokens

    # -- persistence -----------------------------------------------------------------------------
    def anchor(self) -> dict:
        """Where a restarted worker resumes: the first buffered chunk (or the next expected one)."""
        for seg in self.segments:
            if seg.seq is not None:
                return {"seq": seg.seq, "pos": seg.start, "ts": seg.capture_ts, "steps": self.steps_done, "gap_s": round(self.gap_s, 3)}
        return {"seq": self.next_seq, "pos": self.next_pos, "ts": self.next_ts, "steps": self.steps_done, "gap_s": round(self.gap_s, 3)}

    @classmethod
    def from_anchor(cls, hop: int, window: int, horizon_s: float, anchor: dict) -> "LegAudio":
        leg = cls(hop, window, horizon_s)
        leg.next_seq = int(anchor["seq"])
        leg.next_pos = int(anchor["pos"])
        leg.next_ts = anchor.get("ts")
        leg.steps_done = int(anchor["steps"])
        leg.gap_s = float(anchor.get("gap_s", 0.0))
        return leg
