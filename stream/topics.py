"""Kafka topic names and partitioning. Declarations for Faust live in ``stream.app``."""

AUDIO = "calls.audio"            # key = call id, value = binary frame (stream.frame)
AUDIO_DLQ = "calls.audio.dlq"    # original message, reason in headers
EVENTS = "calls.events"          # key = call id, value = JSON CallEvent (start/end)
ALERTS = "calls.alerts"          # key = call id, value = JSON alert
SUMMARIES = "calls.summaries"    # key = call id, value = JSON end-of-call summary
TRANSCRIPTS = "calls.transcripts"  # key = call id, value = JSON transcript segment (callpulse transcriber)

ALL = (AUDIO, AUDIO_DLQ, EVENTS, ALERTS, SUMMARIES, TRANSCRIPTS)
DEFAULT_PARTITIONS = 8
