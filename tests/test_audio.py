import numpy as np
import pytest

from workers.audio import ALAW_TO_FLOAT, MULAW_TO_FLOAT, decode_payload, encode_alaw, encode_mulaw, encode_pcm16, to_analysis_rate

audioop = pytest.importorskip("audioop", reason="audioop (the reference G.711 codec) was removed in Python 3.13")


def test_g711_decode_tables_match_the_reference_codec():
    codes = bytes(range(256))
    assert np.array_equal(MULAW_TO_FLOAT * 32768, np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2"))
    assert np.array_equal(ALAW_TO_FLOAT * 32768, np.frombuffer(audioop.alaw2lin(codes, 2), "<i2"))


@pytest.mark.parametrize("encoding,encode", [("mulaw", encode_mulaw), ("alaw", encode_alaw), ("pcm_s16le", encode_pcm16)])
def test_companding_round_trip_keeps_the_signal(encoding, encode):
    t = np.arange(8000) / 8000
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = decode_payload(encode(x), encoding)
    snr_db = 10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2))
    assert snr_db > (80 if encoding == "pcm_s16le" else 30)


def test_decimation_keeps_the_voice_band_and_removes_aliases():
    t = np.arange(16000) / 16000
    voice = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    alias = np.sin(2 * np.pi * 6000 * t).astype(np.float32)   # would fold to 2 kHz without the filter
    v, a = to_analysis_rate(voice, 16000), to_analysis_rate(alias, 16000)
    assert len(v) == 8000
    assert np.sqrt(np.mean(v[100:-100] ** 2)) > 0.65
    assert np.sqrt(np.mean(a[100:-100] ** 2)) < 0.05
    with pytest.raises(ValueError, match="expected 8000 or 16000 Hz, got 11025"):
        to_analysis_rate(voice, 11025)
