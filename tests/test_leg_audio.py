import signal
from contextlib import contextmanager

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.leg_audio import Chunk, LegAudio

HOP, WIN = 8000, 16000
CHUNK = 1600  # 200 ms


def chunk(seq, value=None, t0=100.0):
    data = np.full(CHUNK, (seq if value is None else value) / 64, np.float32)   # exact in 16-bit
    return Chunk(seq, t0 + seq * CHUNK / 8000, data, token=("tok", seq))


def leg(horizon_s=1.0):
    return LegAudio(HOP, WIN, horizon_s)


def test_in_order_chunks_fill_steps_and_windows():
    a = leg()
    for s in range(10):
        assert a.push(chunk(s)) is None
    assert list(a.complete_steps()) == [0, 1]
    step1 = a.audio(HOP, 2 * HOP)
    assert np.array_equal(step1, np.repeat(np.arange(5, 10, dtype=np.float32) / 64, CHUNK))
    window0 = a.audio(HOP - WIN, HOP)
    assert np.all(window0[:HOP] == 0) and np.array_equal(window0[HOP:], np.repeat(np.arange(5, dtype=np.float32) / 64, CHUNK))


def test_reordering_within_the_horizon_and_duplicates():
    a, b = leg(), leg()
    order = [0, 2, 2, 1, 1, 4, 3, 0, 5, 7, 6, 9, 8]
    reasons = [a.push(chunk(s)) for s in order]
    assert reasons.count("duplicate") == 1 and reasons.count("stale") == 2
    for s in range(10):
        b.push(chunk(s))
    assert a.next_pos == b.next_pos == 10 * CHUNK
    assert np.array_equal(a.audio(0, 10 * CHUNK), b.audio(0, 10 * CHUNK))


def test_a_lost_chunk_becomes_silence_of_its_capture_duration_once_the_horizon_passes():
    a = leg(horizon_s=0.5)
    a.push(chunk(0))
    a.push(chunk(2))            # 1 is missing; 200 ms newer audio is within the horizon
    assert a.next_pos == CHUNK
    a.push(chunk(3))
    a.push(chunk(4))            # now 600 ms of newer audio: give up on 1
    assert a.next_pos == 5 * CHUNK
    assert a.gap_s == 0.2
    assert np.all(a.audio(CHUNK, 2 * CHUNK) == 0) and np.all(a.audio(2 * CHUNK, 3 * CHUNK) == 2 / 64)
    assert a.push(chunk(1)) == "stale"   # too late now


def test_release_keeps_the_context_of_the_next_window_and_returns_tokens_in_order():
    a = leg()
    for s in range(15):        # 3 s of audio
        a.push(chunk(s))
    a.steps_done = 3
    tokens = a.release()
    # the next window (step 3) spans [2 s, 4 s): chunks starting before 2 s are no longer needed
    assert tokens == [("tok", s) for s in range(10)]
    assert a.segments[0].start == 2 * HOP


def test_resume_from_the_anchor_rebuilds_the_same_audio():
    a = leg()
    for s in range(13):
        a.push(chunk(s))
    a.steps_done = 2
    a.release()
    anchor = a.anchor()
    assert anchor["seq"] == 5 and anchor["pos"] == HOP and anchor["steps"] == 2
    b = LegAudio.from_anchor(HOP, WIN, 1.0, anchor)
    for s in range(0, 20):     # the replay from the committed offset starts before the anchor
        reason = b.push(chunk(s))
        assert (reason == "stale") == (s < 5)
    for s in range(13, 20):
        a.push(chunk(s))
    assert list(a.complete_steps()) == list(b.complete_steps()) == [2, 3]
    assert np.array_equal(a.audio(2 * HOP - WIN + HOP, 4 * HOP), b.audio(2 * HOP - WIN + HOP, 4 * HOP))


def test_flush_pending_gives_up_on_missing_chunks_at_call_end():
    a = leg(horizon_s=10)
    a.push(chunk(0))
    a.push(chunk(3))
    assert a.next_pos == CHUNK
    a.flush_pending()
    assert a.next_pos == 4 * CHUNK and not a.pending


# -- issue 17: a clock step back with a hole froze the worker in flush_pending ---------------------------

class Hung(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging) when the body runs longer than ``seconds``; each hypothesis example gets its own
    limit, so shrinking a hanging example cannot hang the suite either."""
    def on_alarm(signum, frame):
        raise Hung(f"did not finish within {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_flush_pending_ends_when_the_capture_clock_steps_back_past_a_hole():
    """The issue's exact repro: seq 1 missing, seq 3 captured 2.4 s *before* seq 2 (a gateway clock step)."""
    a = LegAudio(hop=8000, window=16000, horizon_s=1.0)
    for seq, ts in ((0, 100.0), (2, 100.4), (3, 98.0)):
        a.push(Chunk(seq, ts, np.zeros(CHUNK, np.float32), token=seq))
    with time_limit(5.0):
        a.flush_pending()
    assert not a.pending and a.next_seq == 4
    assert a.next_pos == 3 * CHUNK + int(round(0.2 * 8000))  # three chunks + the 200 ms hole their clock implies


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 40), st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
                          st.integers(1, 4000)), max_size=40),
       st.floats(0.0, 5.0))
def test_push_and_flush_always_terminate_and_account_for_every_chunk(chunks, horizon_s):
    """Any order, any sequence numbers, any (finite) capture clock: push and flush end, nothing stays pending,
    and every token comes back exactly once (released or dropped as duplicate/stale)."""
    a = LegAudio(HOP, WIN, horizon_s)
    dropped = []
    with time_limit(5.0):
        for i, (seq, ts, n) in enumerate(chunks):
            if a.push(Chunk(seq, ts, np.zeros(n, np.float32), token=i)):
                dropped.append(i)
        a.flush_pending()
    assert not a.pending
    released = a.release_all()
    assert sorted(released + dropped) == list(range(len(chunks)))


def test_audio_into_a_dirty_buffer_equals_a_fresh_one_and_zeroes_what_is_not_buffered():
    a = leg()
    for s in range(12):
        a.push(chunk(s, value=s + 1))
    a.steps_done = 1
    a.release()   # the first segments are gone: a window reaching back before them reads zeros
    ranges = [(HOP, 2 * HOP), (HOP - WIN, HOP), (0, WIN), (2 * HOP, 3 * HOP), (a.segments[0].start - 100, a.segments[0].start + 100)]
    for start, end in ranges:
        dirty = np.full(end - start, 7.0, np.float32)
        got = a.audio(start, end, out=dirty)
        assert got is dirty
        assert np.array_equal(dirty, a.audio(start, end)), (start, end)
    before = a.segments[0].start
    assert np.all(a.audio(before - 100, before + 100, out=np.ones(200, np.float32))[:100] == 0)
    assert np.all(a.audio(a.next_pos - 100, a.next_pos + 100, out=np.ones(200, np.float32))[100:] == 0)
