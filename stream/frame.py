"""The binary audio frame on ``calls.audio``: one chunk of one leg of one call.

Layout, version 1 (little-endian, 24-byte fixed header, then the call id, then the payload)::

    offset size field
    0      2    magic            b"CP"
    2      1    version          1
    3      1    leg              0 = agent, 1 = customer
    4      1    encoding         0 = pcm_s16le, 1 = mulaw (G.711 u-law), 2 = alaw (G.711 A-law)
    5      1    call_id_len      1..64 bytes of UTF-8
    6      2    sample_rate      8000 or 16000 (Hz)
    8      4    seq              chunk sequence number of this leg, from 0, +1 per chunk
    12     8    capture_ts_us    capture time of the chunk's first sample, microseconds since the Unix epoch,
                                 finite, 0 (the epoch) .. now + ``timestamps.MAX_FUTURE_S`` (one day)
    20     4    n_samples        samples in the payload (checked against the payload length)
    24     n    call_id
    24+n   ...  payload          n_samples * 2 bytes (pcm_s16le) or n_samples bytes (mulaw, alaw)

The Kafka key is the call id too, so every chunk of a call lands on one partition. Both legs of a call are
sample-aligned from seq 0 (the moment the call was answered); a leg with nothing to say sends silence or
comfort noise, as an RTP stream would.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .timestamps import timestamp_problem

MAGIC = b"CP"
VERSION = 1
HEADER = struct.Struct("<2sBBBBHIqI")
LEGS = ("agent", "customer")
ENCODINGS = ("pcm_s16le", "mulaw", "alaw")
BYTES_PER_SAMPLE = {"pcm_s16le": 2, "mulaw": 1, "alaw": 1}
SAMPLE_RATES_HZ = (8000, 16000)
MAX_CALL_ID_BYTES = 64
MIN_CHUNK_S = 0.02
MAX_CHUNK_S = 2.0


class FrameError(ValueError):
    """A frame that breaks the contract. ``reason`` is a short, bounded label for metrics and the DLQ.

    ``encode_frame`` and ``decode_frame`` raise nothing else, whatever their input."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AudioFrame:
    call_id: str
    leg: str
    seq: int
    capture_ts: float  # seconds since the epoch
    sample_rate: int
    encoding: str
    payload: bytes

    @property
    def n_samples(self) -> int:
        return len(self.payload) // BYTES_PER_SAMPLE[self.encoding]

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate


def encode_frame(frame: AudioFrame, now: float | None = None) -> bytes:
    """Serialise a frame; raises FrameError if the frame itself breaks the contract (a capture time outside
    the accepted window, or not finite, is ``bad_timestamp``). ``now`` defaults to the wall clock."""
    _check_fields(frame.leg, frame.encoding, frame.sample_rate, frame.seq)
    problem = timestamp_problem(frame.capture_ts, now)
    if problem:
        raise FrameError("bad_timestamp", f"capture time {problem}")
    try:
        call_id = frame.call_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FrameError("bad_call_id", f"call id is not encodable as UTF-8: {exc}") from None
    if not 1 <= len(call_id) <= MAX_CALL_ID_BYTES:
        raise FrameError("bad_call_id", f"call id must be 1..{MAX_CALL_ID_BYTES} UTF-8 bytes, got {len(call_id)}")
    width = BYTES_PER_SAMPLE[frame.encoding]
    if len(frame.payload) % width:
        raise FrameError("malformed", f"{frame.encoding} payload must be a multiple of {width} bytes")
    header = HEADER.pack(
        MAGIC, VERSION, LEGS.index(frame.leg), ENCODINGS.index(frame.encoding), len(call_id),
        frame.sample_rate, frame.seq, round(frame.capture_ts * 1e6), len(frame.payload) // width,
    )
    return header + call_id + frame.payload


def decode_frame(data: bytes, max_payload_bytes: int = 64_000, now: float | None = None) -> AudioFrame:
    """Parse and validate a frame. Raises FrameError with a bounded ``reason`` on any contract breach.
    ``now`` (default: the wall clock) bounds the capture time from above."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError("malformed", f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER.size:
        raise FrameError("malformed", f"frame of {len(data)} bytes is shorter than the {HEADER.size}-byte header")
    magic, version, leg, encoding, id_len, rate, seq, ts_us, n_samples = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FrameError("malformed", f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise FrameError("bad_version", f"frame version {version} not supported, expected {VERSION}")
    if leg >= len(LEGS):
        raise FrameError("bad_leg", f"leg code {leg} unknown, expected 0 (agent) or 1 (customer)")
    if encoding >= len(ENCODINGS):
        raise FrameError("bad_encoding", f"encoding code {encoding} unknown, expected 0..{len(ENCODINGS) - 1} {ENCODINGS}")
    if rate not in SAMPLE_RATES_HZ:
        raise FrameError("bad_sample_rate", f"expected 8000 or 16000 Hz, got {rate}")
    if not 1 <= id_len <= MAX_CALL_ID_BYTES:
        raise FrameError("bad_call_id", f"call id length {id_len} outside 1..{MAX_CALL_ID_BYTES}")
    enc = ENCODINGS[encoding]
    payload = data[HEADER.size + id_len:]
    if len(payload) > max_payload_bytes:
        raise FrameError("oversized", f"payload of {len(payload)} bytes exceeds the {max_payload_bytes}-byte limit")
    if len(payload) != n_samples * BYTES_PER_SAMPLE[enc]:
        raise FrameError("malformed", f"header says {n_samples} samples of {enc}, payload has {len(payload)} bytes")
    duration = n_samples / rate
    if not MIN_CHUNK_S - 1e-9 <= duration <= MAX_CHUNK_S + 1e-9:
        raise FrameError("bad_duration", f"chunk of {duration * 1000:.1f} ms outside {MIN_CHUNK_S * 1000:.0f} ms..{MAX_CHUNK_S:.0f} s")
    try:
        call_id = data[HEADER.size:HEADER.size + id_len].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError("bad_call_id", f"call id is not UTF-8: {exc}") from None
    problem = timestamp_problem(ts_us / 1e6, now)
    if problem:
        raise FrameError("bad_timestamp", f"capture time {problem}")
    return AudioFrame(call_id, LEGS[leg], seq, ts_us / 1e6, rate, enc, payload)


def _check_fields(leg: str, encoding: str, sample_rate: int, seq: int) -> None:
    if leg not in LEGS:
        raise FrameError("bad_leg", f"leg must be one of {LEGS}, got {leg!r}")
    if encoding not in ENCODINGS:
        raise FrameError("bad_encoding", f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if sample_rate not in SAMPLE_RATES_HZ:
        raise FrameError("bad_sample_rate", f"expected 8000 or 16000 Hz, got {sample_rate}")
    if not 0 <= seq < 2**32:
        raise FrameError("malformed", f"seq must be 0..2**32-1, got {seq}")
