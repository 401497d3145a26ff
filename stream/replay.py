"""Replay recorded calls as a telephony gateway would: chunks of every leg at real-time pace (or ``speed``
times faster), all calls concurrently, with start and end events.

A stereo file is one call (channel 0 agent, channel 1 customer); ``AGENT.wav+CUSTOMER.wav`` is one call
from one file per leg. 8 and 16 kHz files are sent as they are; files at other rates of 8 kHz or more (44.1 and
48 kHz recordings) are resampled to 16 kHz (or to 8 kHz below 16 kHz) when they are read.
"""

from __future__ import annotations

import heapq
import itertools
import json
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf

from .frame import LEGS, SAMPLE_RATES_HZ
from .producer import CallProducer


@dataclass
class ReplayCall:
    call_id: str
    legs: dict[str, np.ndarray]   # leg -> float32 samples
    sample_rate: int
    metadata: dict[str, str]

    @property
    def duration_s(self) -> float:
        return max(len(x) for x in self.legs.values()) / self.sample_rate


def resample(data: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling of whole channels (axis 0) by the FFT: the spectrum above the new Nyquist
    frequency is cut, so nothing aliases. Whole recordings only (the file is read at once anyway)."""
    n_out = int(round(len(data) * to_rate / rate))
    spectrum = np.fft.rfft(data, axis=0)
    bins = n_out // 2 + 1
    spectrum = spectrum[:bins] if spectrum.shape[0] >= bins else np.pad(spectrum, ((0, bins - spectrum.shape[0]), (0, 0)))
    return (np.fft.irfft(spectrum, n_out, axis=0) * (n_out / len(data))).astype(np.float32)


def target_rate(rate: int) -> int:
    """The contract's rate a recording is sent at: 16 kHz from anything at or above it, else 8 kHz."""
    if rate < min(SAMPLE_RATES_HZ):
        raise ValueError(f"expected a sample rate of at least {min(SAMPLE_RATES_HZ)} Hz, got {rate}")
    return max(r for r in SAMPLE_RATES_HZ if r <= rate)


def _read(path: str) -> tuple[np.ndarray, int]:
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"{path}: not a readable audio file ({exc})") from None
    if len(data) == 0:
        raise ValueError(f"{path}: no audio in the file")
    try:
        to_rate = target_rate(rate)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return (data, rate) if to_rate == rate else (resample(data, rate, to_rate), to_rate)


def load_call(spec: str, call_id: str | None = None, metadata: dict | None = None) -> ReplayCall:
    """``file.wav`` (stereo: agent, customer) or ``agent.wav+customer.wav``."""
    if "+" in spec:
        a, c = spec.split("+", 1)
        (da, ra), (dc, rc) = _read(a), _read(c)
        if ra != rc:
            raise ValueError(f"both legs need one sample rate, got {ra} and {rc}")
        legs, rate = {"agent": da[:, 0], "customer": dc[:, 0]}, ra
    else:
        data, rate = _read(spec)
        if data.shape[1] != 2:
            raise ValueError(f"{spec}: a single file must be stereo (agent, customer); got {data.shape[1]} channel(s). Use AGENT+CUSTOMER for one file per leg")
        legs = {"agent": data[:, 0], "customer": data[:, 1]}
    cid = call_id or f"{Path(spec.split('+')[0]).stem}-{uuid.uuid4().hex[:8]}"
    return ReplayCall(cid, {k: np.ascontiguousarray(v) for k, v in legs.items()}, rate, dict(metadata or {}))


def sample_calls_dir() -> Path:
    return Path(str(resources.files("stream"))) / "samples"


def load_sample_calls(suffix: str = "") -> list[ReplayCall]:
    """The calls shipped with the package, with their metadata from ``calls.json``."""
    root = sample_calls_dir()
    manifest = json.loads((root / "calls.json").read_text())
    calls = []
    for entry in manifest:
        meta = {k: entry.get(k, "") for k in ("agent_id", "queue", "campaign", "language", "direction")}
        calls.append(load_call(str(root / entry["file"]), f"{entry['call_id']}{suffix}", meta))
    return calls


def replay(producer: CallProducer, calls: list[ReplayCall], speed: float = 1.0, chunk_ms: int = 200,
           encoding: str = "mulaw", t0: float | None = None, stop=lambda: False) -> int:
    """Stream every call concurrently; returns the number of chunks sent. ``speed`` <= 0 sends as fast as possible."""
    if not 20 <= chunk_ms <= 2000:
        raise ValueError(f"chunk_ms must be 20..2000, got {chunk_ms}")
    t0 = time.time() if t0 is None else t0
    counter = itertools.count()
    queue: list[tuple[float, int, str, str, int]] = []   # (due audio time, tiebreak, call, leg, seq)
    by_id = {c.call_id: c for c in calls}
    for call in calls:
        producer.start_call(call.call_id, ts=t0, **call.metadata)
        for leg in LEGS:
            heapq.heappush(queue, (0.0, next(counter), call.call_id, leg, 0))
    producer.flush()
    sent = 0
    while queue and not stop():
        due, _, cid, leg, seq = heapq.heappop(queue)
        call = by_id[cid]
        n = call.sample_rate * chunk_ms // 1000
        samples = call.legs[leg][seq * n:(seq + 1) * n]
        if len(samples) * 1000 < 20 * call.sample_rate:   # a tail shorter than 20 ms is not sent
            if all(q[2] != cid for q in queue):
                producer.end_call(cid, ts=t0 + call.duration_s)
            continue
        chunk_end = (seq + 1) * chunk_ms / 1000.0
        if speed > 0:
            wait = t0 + chunk_end / speed - time.time()   # a gateway sends a chunk once its last sample is captured
            if wait > 0:
                time.sleep(wait)
        capture = t0 + seq * chunk_ms / 1000.0   # the call's own clock: at speed != 1, end-to-end latency is not meaningful
        producer.send_audio(cid, leg, seq, capture, samples, call.sample_rate, encoding)
        sent += 1
        heapq.heappush(queue, (chunk_end, next(counter), cid, leg, seq + 1))
    producer.flush()
    return sent
