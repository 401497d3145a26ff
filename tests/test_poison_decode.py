"""Issue 17: every calls.events value and every calls.audio value, whatever its bytes, decodes or raises the
module's own error with a bounded reason (bounded property-based tests with hypothesis)."""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.events import MAX_EVENT_BYTES, CallEvent, EventError, decode_event
from stream.frame import HEADER, FrameError, decode_frame, encode_frame, AudioFrame

NOW = 1_700_000_000.0
EVENT_REASONS = {"bad_event", "bad_timestamp"}
FRAME_REASONS = {"malformed", "bad_version", "bad_leg", "bad_encoding", "bad_sample_rate", "bad_call_id", "bad_duration",
                 "oversized", "bad_timestamp"}
PROPERTY = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("value,reason,text", [
    (None, "bad_event", "tombstone"),
    (b"[" * 100_000, "bad_event", f"exceeds the {MAX_EVENT_BYTES}-byte limit"),
    (b"[" * 10_000, "bad_event", "nested too deeply"),
    (b'{"type": "end", "call_id": "c", "ts": NaN}', "bad_timestamp", "must be finite"),
    (b'{"type": "start", "call_id": "c", "ts": -Infinity}', "bad_timestamp", "must be finite"),
    (b'{"type": "start", "call_id": "c", "ts": Infinity}', "bad_timestamp", "must be finite"),
    (b'{"type": "start", "call_id": "c", "ts": -5}', "bad_timestamp", "outside 0 (the epoch)"),
    (b'{"type": "start", "call_id": "c", "ts": 1e300}', "bad_timestamp", "outside 0 (the epoch)"),
    (json.dumps({"type": "start", "call_id": "\u00e9" * 33, "ts": NOW}).encode(), "bad_event", "64 UTF-8 bytes, got 66"),
    (b"\xff\xfe\x00", "bad_event", "not a valid CallEvent JSON"),
    (b"{}", "bad_event", "not a valid CallEvent JSON"),
])
def test_poison_events_raise_event_error_with_their_reason(value, reason, text):
    with pytest.raises(EventError) as exc:
        decode_event(value, now=NOW)
    assert exc.value.reason == reason
    assert text in str(exc.value)


def test_a_64_byte_call_id_is_accepted():
    ev = decode_event(json.dumps({"type": "start", "call_id": "\u00e9" * 32, "ts": NOW}).encode(), now=NOW)
    assert len(ev.call_id.encode()) == 64


json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=80),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                           max_leaves=12)
events = st.fixed_dictionaries({"type": st.sampled_from(["start", "end", "other"]),
                                "call_id": st.text(max_size=80), "ts": st.floats() | st.integers() | st.text(max_size=5)},
                               optional={"queue": st.text(max_size=300), "direction": st.text(max_size=10), "x": json_values})


@PROPERTY
@given(st.one_of(st.binary(max_size=400), json_values.map(lambda v: json.dumps(v).encode()),
                 events.map(lambda v: json.dumps(v).encode()), st.none()))
def test_decode_event_raises_only_event_error_and_accepts_only_the_contract(value):
    try:
        ev = decode_event(value, now=NOW)
    except EventError as exc:
        assert exc.reason in EVENT_REASONS and str(exc)
        return
    assert ev.type in ("start", "end") and 1 <= len(ev.call_id.encode()) <= 64
    assert math.isfinite(ev.ts) and 0 <= ev.ts <= NOW + 86_400
    assert decode_event(ev.to_bytes(), now=NOW) == ev


def valid_frame_bytes():
    return st.builds(lambda leg, enc, rate, seq, ts, cid, n: encode_frame(AudioFrame(
        cid, leg, seq, ts, rate, enc, b"\x01" * (int(rate * n) * (2 if enc == "pcm_s16le" else 1))), now=NOW),
        st.sampled_from(["agent", "customer"]), st.sampled_from(["pcm_s16le", "mulaw", "alaw"]), st.sampled_from([8000, 16000]),
        st.integers(0, 2**32 - 1), st.floats(0, NOW, allow_nan=False), st.text(min_size=1, max_size=16),
        st.sampled_from([0.02, 0.2, 0.5]))


@PROPERTY
@given(valid_frame_bytes(), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
       st.integers(0, 500), st.binary(max_size=64))
def test_decode_frame_raises_only_frame_error_on_any_corruption(data, flips, cut, tail):
    """Start from a valid frame (so the fuzz reaches the deep checks), flip bytes, truncate, append."""
    b = bytearray(data)
    for pos, val in flips:
        if pos < len(b):
            b[pos] = val
    b = bytes(b[:cut]) + tail if cut < len(b) else bytes(b) + tail
    try:
        f = decode_frame(b, now=NOW)
    except FrameError as exc:
        assert exc.reason in FRAME_REASONS and str(exc)
        return
    assert 0 <= f.capture_ts <= NOW + 86_400 and 0.02 - 1e-9 <= f.duration_s <= 2.0 + 1e-9
    assert encode_frame(f, now=NOW) == b[:HEADER.size + len(f.call_id.encode()) + len(f.payload)]


@PROPERTY
@given(st.binary(max_size=300) | st.none() | st.integers())
def test_decode_frame_on_arbitrary_input(value):
    try:
        decode_frame(value, now=NOW)
    except FrameError as exc:
        assert exc.reason in FRAME_REASONS
