import struct

import numpy as np
import pytest

from stream.frame import HEADER, AudioFrame, FrameError, decode_frame, encode_frame


def frame(**kw):
    base = dict(call_id="call-1", leg="agent", seq=7, capture_ts=1_700_000_000.123456, sample_rate=8000, encoding="mulaw", payload=b"\x7f" * 160)
    base.update(kw)
    return AudioFrame(**base)


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("encoding,width", [("pcm_s16le", 2), ("mulaw", 1), ("alaw", 1)])
@pytest.mark.parametrize("chunk_s", [0.02, 0.2, 2.0])
def test_round_trip_every_encoding_rate_and_chunk_size(rate, encoding, width, chunk_s):
    f = frame(sample_rate=rate, encoding=encoding, payload=bytes(range(256)) * int(rate * chunk_s * width // 256 + 1))
    f = frame(sample_rate=rate, encoding=encoding, payload=f.payload[: int(rate * chunk_s) * width], leg="customer", seq=2**32 - 1)
    g = decode_frame(encode_frame(f), max_payload_bytes=10**6)
    assert g == f
    assert g.duration_s == pytest.approx(chunk_s)


def test_header_is_compact():
    data = encode_frame(frame())
    assert len(data) == HEADER.size + len("call-1") + 160 == 190


def corrupt(data: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


GOOD = encode_frame(frame())


@pytest.mark.parametrize("data,reason,text", [
    (b"short", "malformed", "shorter than the 24-byte header"),
    (corrupt(GOOD, 0, "2s", b"XX"), "malformed", "bad magic"),
    (corrupt(GOOD, 2, "B", 9), "bad_version", "version 9 not supported"),
    (corrupt(GOOD, 3, "B", 5), "bad_leg", "leg code 5 unknown"),
    (corrupt(GOOD, 4, "B", 7), "bad_encoding", "encoding code 7 unknown"),
    (corrupt(GOOD, 6, "<H", 44100), "bad_sample_rate", "expected 8000 or 16000 Hz, got 44100"),
    (corrupt(GOOD, 5, "B", 0), "bad_call_id", "call id length 0"),
    (corrupt(GOOD, 20, "<I", 161), "malformed", "header says 161 samples"),
    (GOOD[:-1], "malformed", "payload has 159 bytes"),
    (encode_frame(frame(payload=b"\x00" * 80)), "bad_duration", "outside 20 ms..2 s"),
    (encode_frame(frame(call_id="\u00e9t\u00e9")).replace("\u00e9".encode(), b"\xff\xfe", 1), "bad_call_id", "not UTF-8"),
])
def test_contract_breaches_have_a_reason_and_a_clear_message(data, reason, text):
    with pytest.raises(FrameError) as exc:
        decode_frame(data)
    assert exc.value.reason == reason
    assert text in str(exc.value)


def test_oversized_payload_is_rejected_before_anything_else_is_done_with_it():
    big = encode_frame(frame(sample_rate=16000, encoding="pcm_s16le", payload=b"\x00" * 64_000))
    assert decode_frame(big, max_payload_bytes=64_000).n_samples == 32_000
    with pytest.raises(FrameError) as exc:
        decode_frame(big, max_payload_bytes=32_000)
    assert exc.value.reason == "oversized"


@pytest.mark.parametrize("kw,reason", [
    (dict(leg="both"), "bad_leg"), (dict(encoding="opus"), "bad_encoding"), (dict(sample_rate=44100), "bad_sample_rate"),
    (dict(call_id=""), "bad_call_id"), (dict(call_id="x" * 65), "bad_call_id"), (dict(seq=-1), "malformed"),
    (dict(encoding="pcm_s16le", payload=b"\x00" * 161), "malformed"),
])
def test_encoder_refuses_frames_that_break_the_contract(kw, reason):
    with pytest.raises(FrameError) as exc:
        encode_frame(frame(**kw))
    assert exc.value.reason == reason


def test_random_bytes_never_crash_the_decoder():
    rng = np.random.default_rng(1)
    for n in range(0, 400, 3):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        try:
            decode_frame(data)
        except FrameError:
            pass


# -- issue 17: capture times are validated at the edge, and the encoder raises only FrameError ---------------

@pytest.mark.parametrize("ts", [2**63 / 1e6, -2**63 / 1e6, 9.3e12, float("nan"), float("inf"), float("-inf"), -1.0,
                                1_700_000_000.0 + 2 * 86_400])
def test_encoder_raises_its_own_error_for_capture_times_outside_the_window(ts):
    with pytest.raises(FrameError) as exc:
        encode_frame(frame(capture_ts=ts), now=1_700_000_000.0)
    assert exc.value.reason == "bad_timestamp" and "capture time" in str(exc.value)


@pytest.mark.parametrize("ts_us,text", [(2**63 - 1, "outside 0 (the epoch)"), (-1, "outside 0 (the epoch)"),
                                        (int((1_700_000_000 + 90_000) * 1e6), "now + 86400 s")])
def test_decoder_rejects_capture_times_outside_the_window(ts_us, text):
    data = corrupt(GOOD, 12, "<q", ts_us)
    with pytest.raises(FrameError) as exc:
        decode_frame(data, now=1_700_000_000.0)
    assert exc.value.reason == "bad_timestamp" and text in str(exc.value)
    assert decode_frame(GOOD, now=1_700_000_000.0).capture_ts == pytest.approx(1_700_000_000.123456)


def test_encoder_rejects_a_call_id_that_is_not_utf8_encodable():
    with pytest.raises(FrameError) as exc:
        encode_frame(frame(call_id="a\udc80"))
    assert exc.value.reason == "bad_call_id"
