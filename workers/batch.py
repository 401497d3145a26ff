"""What passes between the agent and the pure core: Kafka records in, a batch result out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Record:
    """One Kafka message. ``token`` is an opaque handle the agent acknowledges once the batch is written."""
    topic: str
    key: bytes | None
    value: bytes
    token: Any = None
    partition: int | None = None
    headers: dict | None = None


@dataclass(slots=True)
class DeadLetter:
    record: Record
    reason: str
    message: str


@dataclass
class BatchResult:
    """Everything the sinks must write for one batch; ``acks`` only after they succeeded."""
    call_fields: dict[str, dict[str, str]] = field(default_factory=dict)   # call id -> hash fields
    timeline: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    alerts: list = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)
    risks: dict[str, float] = field(default_factory=dict)                  # active call id -> risk
    ended: list[str] = field(default_factory=list)
    acks: list[Any] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    step_capture_ts: list[float] = field(default_factory=list)            # for end-to-end latency

    def ack(self, rec: Record) -> None:
        if rec.token is not None:
            self.acks.append(rec.token)
