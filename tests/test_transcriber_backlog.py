"""The transcriber's lifecycle on a backlog, as the emotion worker's (workers.backlog): a transcriber reading
minutes-old audio (after an outage, a restart, overload) must not end a call by its wall-clock waits before it
has read the call's audio, or it would lose the last utterances. The recogniser here is a stand-in that writes
each utterance's length as its text: these tests are about which utterances are cut and when a call ends; the
real recogniser runs in tests/test_transcriber_stack.py."""

from prometheus_client import CollectorRegistry

from stream import topics
from stream.settings import Settings
from tests.test_pipeline import T0, Clock, call_records, run
from workers.metrics import WorkerMetrics
from workers.transcribe.core import TranscriptCore
from workers.transcribe.recognizer import Transcript

LATE_S = 120.0   # the records were produced this long before the transcriber reads them


class LengthRecognizer:
    def transcribe(self, utterances, languages):
        return [Transcript(f"{len(u)} samples", 1.0, lang) for u, lang in zip(utterances, languages)]


def make_core(clock=None, **settings) -> TranscriptCore:
    return TranscriptCore(Settings(**settings), LengthRecognizer(), None, WorkerMetrics(CollectorRegistry()), clock=clock or Clock())


def segments(results) -> list[tuple]:
    return sorted((s["segment_id"], s["start"], s["end"], s["text"], s["final"]) for r in results for s in r.segments)


def late_records():
    recs = call_records()
    for r in recs:
        r.timestamp = T0 - LATE_S
    return recs


def test_a_transcriber_reading_a_backlog_does_not_end_a_call_before_its_audio():
    clean = segments(run(make_core(), call_records()))
    assert len(clean) >= 4   # both legs speak twice in the script
    clock = Clock()
    core = make_core(clock, end_grace_s=3, inactivity_timeout_s=5)
    recs = late_records()
    out = run(core, [recs[0], recs[-1]] + recs[1:100])
    clock.t += 10   # longer than the end grace and the inactivity timeout with no audio of this call
    out.append(core.process([]))
    assert not any(r.ended for r in out)
    out += run(core, recs[100:-1])
    assert [c for r in out for c in r.ended] == ["c1"]
    assert segments(out) == clean


def test_a_caught_up_partition_ends_a_call_whose_audio_stopped_by_the_grace():
    clock = Clock()
    core = make_core(clock, end_grace_s=3)
    recs = late_records()
    run(core, recs[:100] + [recs[-1]])
    clock.t += 4
    assert not core.process([]).ended          # read late: its audio may still be in the backlog
    core.mark_caught_up({(topics.AUDIO, 0)})   # the agent read the partition to its end: nothing is in flight
    assert core.process([]).ended == ["c1"]


def test_chunks_read_from_a_backlog_wait_for_a_start_event_still_unread():
    clean = segments(run(make_core(), call_records()))
    clock = Clock()
    core = make_core(clock, start_grace_s=2)
    recs = late_records()
    out = run(core, recs[1:60])          # audio first: its start event is further back in the backlog
    clock.t += 5                         # longer than the start grace
    out.append(core.process([]))
    assert not any(r.dead for r in out)
    out += run(core, [recs[0]] + recs[60:])
    assert segments(out) == clean


def test_chunks_of_an_ended_call_read_again_are_acknowledged_and_audio_past_its_end_is_dead_lettered():
    """As the emotion worker (workers/ended_calls.py): Kafka redelivers after a failed commit."""
    from stream.events import CallEvent
    from tests.test_pipeline import _past_the_end
    from workers.batch import Record
    core = make_core()
    recs = call_records()
    out = run(core, recs)
    assert [c for r in out for c in r.ended] == ["c1"]
    again = [Record(r.topic, r.key, r.value, token=f"again-{i}") for i, r in enumerate(recs[:6])]   # its start and 5 chunks
    reuse = Record(topics.EVENTS, b"c1", CallEvent(type="start", call_id="c1", ts=T0 + 3600).to_bytes(), token="reuse")
    res = core.process([*again, _past_the_end(recs[5], "late"), reuse])
    assert [(d.reason, d.record.token) for d in res.dead] == [("ended_call", "late"), ("ended_call", "reuse")]
    assert {f"again-{i}" for i in range(6)} <= set(res.acks) and not res.segments
    assert core.m.redelivered._value.get() == 6
