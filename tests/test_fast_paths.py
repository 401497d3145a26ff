"""The per-message fast paths of issue 16 give exactly what the plain code gave."""

import numpy as np
import pytest

from workers.audio import buffered_samples, decode_payload, decode_to_pcm16, encode_alaw, encode_mulaw, encode_pcm16, to_analysis_rate
from workers.leg_audio import Chunk, LegAudio
from workers.vad import speech_share


@pytest.mark.parametrize("encoding,encode", [("mulaw", encode_mulaw), ("alaw", encode_alaw), ("pcm_s16le", encode_pcm16)])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_int16_decoding_equals_the_float_path_scaled(encoding, encode, rate):
    rng = np.random.default_rng(rate)
    x = np.clip(rng.normal(0, 0.3, rate // 2), -1, 1).astype(np.float32)   # loud: clipping must agree too
    payload = encode(x)
    old = np.clip(to_analysis_rate(decode_payload(payload, encoding), rate) * 32768.0, -32768, 32767).astype(np.int16)
    new = decode_to_pcm16(payload, encoding, rate)
    assert new.dtype == np.int16 and np.array_equal(new, old)


def test_a_leg_holds_int16_and_float_chunks_alike():
    x = (0.25 * np.sin(np.arange(4000) / 7)).astype(np.float32)
    pcm = decode_to_pcm16(encode_pcm16(x), "pcm_s16le", 8000)
    a, b = LegAudio(8000, 16000), LegAudio(8000, 16000)
    a.push(Chunk(0, 0.0, x))
    b.push(Chunk(0, 0.0, pcm))
    assert np.array_equal(a.audio(0, 4000), b.audio(0, 4000))


def test_speech_share_is_the_mask_mean_exactly():
    rng = np.random.default_rng(0)
    for n in (1, 7, 49, 50, 51, 100, 1000):
        for p in (0.0, 0.13, 0.5, 0.97, 1.0):
            mask = rng.random(n) < p
            assert speech_share(mask) == float(mask.mean())


@pytest.mark.parametrize("encoding,encode", [("mulaw", encode_mulaw), ("alaw", encode_alaw), ("pcm_s16le", encode_pcm16)])
def test_buffered_chunks_read_back_as_the_decoded_float_samples(encoding, encode):
    """G.711 stays encoded in the leg buffer; what a step or window reads is what decoding first gave."""
    rng = np.random.default_rng(1)
    chunks = [encode(np.clip(rng.normal(0, 0.2, 4000), -1, 1).astype(np.float32)) for _ in range(3)]
    kept, decoded = LegAudio(8000, 16000), LegAudio(8000, 16000)
    for seq, payload in enumerate(chunks):
        samples, table = buffered_samples(payload, encoding, 8000)
        assert (table is None) == (encoding == "pcm_s16le")
        kept.push(Chunk(seq, seq * 0.5, samples, None, table))
        decoded.push(Chunk(seq, seq * 0.5, decode_payload(payload, encoding)))
    for start, end in ((0, 8000), (2000, 12000), (-4000, 4000), (6000, 16000)):
        assert np.array_equal(kept.audio(start, end), decoded.audio(start, end))


def test_figures_derived_from_the_trend_follow_every_change_of_it():
    from workers.call_state import LegScores
    rng = np.random.default_rng(2)
    sc = LegScores()
    for i in range(150):   # past the trend window, so points also leave it
        sc.add_scores(float(i), {"angry": 0.1, "neutral": 0.9}, float(rng.uniform(-1, 1)))
        fresh = LegScores.from_dict(sc.to_dict())   # no cache
        assert sc.sentiment_trend == fresh.sentiment_trend
        assert sc.from_trend("n", lambda: len(sc.trend)) == len(fresh.trend)
        assert sc.sentiment_trend == sc.sentiment_trend   # a cache hit gives the same
