"""Call lifecycle events on ``calls.events`` (JSON; low rate, so readability wins over compactness)."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

METADATA_FIELDS = ("agent_id", "queue", "campaign", "language", "direction")


class CallEvent(BaseModel):
    type: Literal["start", "end"]
    call_id: str = Field(min_length=1, max_length=64)
    ts: float = Field(description="event time, seconds since the epoch")
    agent_id: str = ""
    queue: str = ""
    campaign: str = ""
    language: str = ""
    direction: Literal["inbound", "outbound", ""] = ""

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def metadata(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in METADATA_FIELDS}


class EventError(ValueError):
    reason = "bad_event"


def decode_event(data: bytes) -> CallEvent:
    try:
        return CallEvent.model_validate(json.loads(data))
    except (ValueError, ValidationError) as exc:
        raise EventError(f"calls.events value is not a valid CallEvent JSON: {exc}".splitlines()[0]) from None
