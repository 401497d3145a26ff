import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stream.replay import load_sample_calls, sample_calls_dir

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MANIFEST = json.loads((sample_calls_dir() / "calls.json").read_text())


def rms_db(x):
    return 10 * np.log10(np.mean(x ** 2) + 1e-12)


@pytest.mark.parametrize("entry", MANIFEST, ids=[m["call_id"] for m in MANIFEST])
def test_shipped_calls_are_two_leg_telephone_audio_that_match_their_manifest(entry):
    info = sf.info(sample_calls_dir() / entry["file"])
    assert (info.samplerate, info.channels, info.subtype) == (8000, 2, "ULAW")
    assert 60 <= info.duration <= 120 and info.duration == pytest.approx(entry["duration_s"], abs=0.01)
    audio, _ = sf.read(sample_calls_dir() / entry["file"], dtype="float32")
    for ch in range(2):
        assert np.abs(audio[:, ch]).max() > 0.01, "a leg is silent throughout"
        assert np.all(np.abs(audio[:, ch]) > 0) or rms_db(audio[:8000, ch]) > -80, "comfort noise, not digital zero"
    for seg in entry["segments"]:
        assert 0 <= seg["start_s"] < seg["end_s"] <= entry["duration_s"]
        ch = 0 if seg["leg"] == "agent" else 1
        a, b = int(seg["start_s"] * 8000), int(seg["end_s"] * 8000)
        assert rms_db(audio[a:b, ch]) > -35, f"segment {seg['source_file']} is not audible"


def test_the_hold_silence_is_quiet_on_both_legs_and_the_overtalk_has_both_voices():
    entry = next(m for m in MANIFEST if m["call_id"] == "demo-en-silence")
    audio, _ = sf.read(sample_calls_dir() / entry["file"], dtype="float32")
    segs = sorted(entry["segments"], key=lambda s: s["start_s"])
    gaps = [(b["start_s"] - max(s["end_s"] for s in segs[:i + 1]), i) for i, b in enumerate(segs[1:])]
    longest, i = max(gaps)
    assert longest >= 30
    start = max(s["end_s"] for s in segs[:i + 1])
    quiet = audio[int((start + 1) * 8000):int((start + longest - 1) * 8000)]
    assert rms_db(quiet[:, 0]) < -50 and rms_db(quiet[:, 1]) < -50
    overlap = 0.0
    for s in segs:
        for t in segs:
            if s["leg"] == "agent" and t["leg"] == "customer":
                overlap += max(0.0, min(s["end_s"], t["end_s"]) - max(s["start_s"], t["start_s"]))
    assert overlap > 5


def test_sample_calls_load_for_replay():
    calls = load_sample_calls("-x")
    assert [c.call_id for c in calls] == [m["call_id"] + "-x" for m in MANIFEST]
    assert all(c.metadata["queue"] for c in calls)


@pytest.mark.skipif(not (DATA / "emovo" / "labels.csv").exists(), reason="the corpora (../shared/data) are not beside the repository")
def test_rebuilding_reproduces_the_shipped_audio(tmp_path):
    from stream.sample_calls import build
    build(DATA, tmp_path)
    for entry in MANIFEST:
        assert (tmp_path / entry["file"]).read_bytes() == (sample_calls_dir() / entry["file"]).read_bytes()
    assert json.loads((tmp_path / "calls.json").read_text()) == MANIFEST
