"""Call lifecycle events on ``calls.events`` (JSON; low rate, so readability wins over compactness).

Contract of a value: one UTF-8 JSON object of at most ``MAX_EVENT_BYTES``; ``call_id`` 1..64 UTF-8 *bytes*
(the same limit as the audio frame's call id); ``ts`` finite and inside the window of ``stream.timestamps``.
``decode_event`` raises ``EventError`` (never anything else) for any value that breaks it, a tombstone included.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from .frame import MAX_CALL_ID_BYTES
from .timestamps import timestamp_problem

METADATA_FIELDS = ("agent_id", "queue", "campaign", "language", "direction")
MAX_EVENT_BYTES = 16_384   # a start event with every field is a few hundred bytes
MAX_FIELD_CHARS = 256


class CallEvent(BaseModel):
    type: Literal["start", "end"]
    call_id: str = Field(min_length=1, max_length=MAX_CALL_ID_BYTES)
    ts: float = Field(description="event time, seconds since the epoch (finite; see stream.timestamps)")
    agent_id: str = Field("", max_length=MAX_FIELD_CHARS)
    queue: str = Field("", max_length=MAX_FIELD_CHARS)
    campaign: str = Field("", max_length=MAX_FIELD_CHARS)
    language: str = Field("", max_length=MAX_FIELD_CHARS)
    direction: Literal["inbound", "outbound", ""] = ""

    @field_validator("call_id")
    @classmethod
    def _call_id_bytes(cls, v: str) -> str:
        n = len(v.encode("utf-8", "surrogatepass"))
        if n > MAX_CALL_ID_BYTES:
            raise ValueError(f"call_id must be 1..{MAX_CALL_ID_BYTES} UTF-8 bytes, got {n}")
        return v

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def metadata(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in METADATA_FIELDS}


class EventError(ValueError):
    def __init__(self, message: str, reason: str = "bad_event") -> None:
        super().__init__(message)
        self.reason = reason


def decode_event(data: bytes | None, now: float | None = None) -> CallEvent:
    """Parse and validate one ``calls.events`` value; ``now`` (default: the wall clock) bounds ``ts``."""
    if data is None:
        raise EventError("calls.events value is empty (a tombstone): expected a CallEvent JSON object")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise EventError(f"calls.events value must be bytes, got {type(data).__name__}")
    if len(data) > MAX_EVENT_BYTES:
        raise EventError(f"calls.events value of {len(data)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit")
    try:
        ev = CallEvent.model_validate(json.loads(bytes(data)))
    except RecursionError:
        raise EventError("calls.events value is not a valid CallEvent JSON: nested too deeply") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:3])
        raise EventError(f"calls.events value is not a valid CallEvent JSON: {problems}") from None
    except ValueError as exc:   # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise EventError(f"calls.events value is not a valid CallEvent JSON: {exc}".splitlines()[0]) from None
    problem = timestamp_problem(ev.ts, now)
    if problem:
        raise EventError(f"{ev.type} event of call {ev.call_id!r}: ts {problem}", reason="bad_timestamp")
    return ev
