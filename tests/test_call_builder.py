"""The labelled call builder: call scripts per type, telephone impairments, and (with the corpora beside the
repository) segments that match the audio, fold-honest speakers, and determinism."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stream.call_builder import ANGRY, CALL_TYPES, MIN_ANGRY_TURNS, build, fold_of, script
from stream.call_channel import Impairments, apply_impairments, loss_mask

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "emovo" / "labels.csv").exists(), reason="the corpora (../shared/data) are not beside the repository")


def customer_pools(turns):
    return [pool for leg, pool, _ in turns if leg == "customer"]


@pytest.mark.parametrize("seed", range(20))
def test_scripts_follow_their_type(seed):
    rng = np.random.default_rng(seed)
    for kind in CALL_TYPES:
        turns = script(kind, rng)
        legs = [leg for leg, _, _ in turns]
        assert legs == ["agent", "customer"] * (len(turns) // 2), "agent and customer alternate"
        cust = customer_pools(turns)
        angry = [p == ANGRY for p in cust]
        agent_angry = [p == ANGRY for leg, p, _ in turns if leg == "agent"]
        if kind == "escalation":
            first = angry.index(True)
            assert first >= 2 and all(angry[first:]) and sum(angry) >= MIN_ANGRY_TURNS, "calm opening, then sustained anger"
        elif kind == "burst":
            assert sum(angry) == 1 and [n for leg, p, n in turns if leg == "customer" and p == ANGRY] == [1], "one short angry turn"
        else:
            assert not any(angry), f"{kind}: the customer is never angry"
        assert sum(agent_angry) >= (MIN_ANGRY_TURNS if kind == "angry_agent" else 0)
        if kind != "angry_agent":
            assert not any(agent_angry)


def test_packet_loss_rate_and_bursts():
    lost = loss_mask(200_000, 0.04, np.random.default_rng(1))
    assert lost.mean() == pytest.approx(0.04, rel=0.1)
    starts = np.flatnonzero(lost[1:] & ~lost[:-1])
    assert lost.sum() / len(starts) == pytest.approx(2.5, rel=0.15), "losses come in bursts of 2.5 packets on average"
    assert not loss_mask(1000, 0.0, np.random.default_rng(1)).any()


def test_impairments_change_only_what_they_say():
    rng = np.random.default_rng(0)
    audio = (rng.normal(0, 0.05, (16000, 2))).astype(np.float32)
    same = apply_impairments(audio, Impairments(), np.random.default_rng(1))
    assert np.allclose(same, audio, atol=1e-7)
    louder = apply_impairments(audio, Impairments(customer_gain_db=6.0), np.random.default_rng(1))
    assert np.allclose(louder[:, 0], audio[:, 0], atol=1e-7) and np.allclose(louder[:, 1], audio[:, 1] * 10 ** 0.3, atol=1e-6)
    lossy = apply_impairments(audio, Impairments(packet_loss=0.05), np.random.default_rng(1))
    zero_packets = (np.abs(lossy[:, 1].reshape(-1, 160)).max(axis=1) == 0).mean()
    assert 0.02 < zero_packets < 0.1
    noisy = apply_impairments(np.zeros((16000, 2), np.float32), Impairments(noise_snr_db=20.0), np.random.default_rng(1))
    rms_db = 20 * np.log10(np.sqrt((noisy[:, 1].astype(np.float64) ** 2).mean()))
    assert rms_db == pytest.approx(-19.0 - 20.0, abs=0.5), "noise sits SNR dB below the customer's speech level"
    assert not noisy[:, 0].any(), "noise is on the customer leg only"


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("calls")
    calls = build(DATA, out, ["emovo"], {k: 1 for k in CALL_TYPES}, fold=0, held_out=True, seed=5)
    return out, calls


@needs_data
def test_build_is_deterministic(built, tmp_path):
    out, _ = built
    build(DATA, tmp_path, ["emovo"], {k: 1 for k in CALL_TYPES}, fold=0, held_out=True, seed=5)
    assert _digest(tmp_path) == _digest(out)
    build(DATA, tmp_path / "other", ["emovo"], {k: 1 for k in CALL_TYPES}, fold=0, held_out=True, seed=6)
    assert _digest(tmp_path / "other") != _digest(out)


@needs_data
def test_speakers_come_from_the_chosen_fold(built, tmp_path):
    folds = fold_of(DATA)
    _, calls = built
    assert {c["fold"] for c in calls} == {0}
    assert all(folds[s] == 0 for c in calls for s in c["speakers"].values())
    others = build(DATA, tmp_path, ["emovo"], {"calm": 4}, fold=0, held_out=False, seed=5)
    assert all(folds[s] != 0 for c in others for s in c["speakers"].values())


@needs_data
def test_segments_match_the_audio(built):
    out, calls = built
    manifest = json.loads((out / "calls.json").read_text())
    assert manifest["format"] == "callpulse-calls/1" and [c["call_id"] for c in manifest["calls"]] == [c["call_id"] for c in calls]
    for call in calls:
        audio, rate = sf.read(out / call["file"], dtype="float32")
        assert rate == 8000 and audio.shape[1] == 2
        assert len(audio) / rate == pytest.approx(call["duration_s"], abs=0.01)
        sf_info = sf.info(out / call["file"])
        assert sf_info.subtype == {"mulaw": "ULAW", "alaw": "ALAW"}[call["impairments"]["codec"]]
        for ch, leg in enumerate(("agent", "customer")):
            x = audio[:, ch].astype(np.float64)
            on = np.zeros(len(x), bool)
            for s in (s for s in call["segments"] if s["leg"] == leg):
                on[int(s["start_s"] * rate):int(s["end_s"] * rate)] = True
                inside = x[int(s["start_s"] * rate):int(s["end_s"] * rate)]
                assert np.sqrt((inside ** 2).mean()) > 10 ** (-32 / 20), f"{call['call_id']} {leg} segment {s} holds speech"
            off = x[~on]
            speech = np.sqrt((x[on] ** 2).mean())
            assert np.sqrt((off ** 2).mean()) < speech / 10 ** (9 / 20), f"{call['call_id']} {leg}: outside the segments is well below speech"
        angry = [s for s in call["segments"] if s["leg"] == "customer" and s["emotion"] == "angry"]
        assert call["first_angry_customer_s"] == (min(s["start_s"] for s in angry) if angry else None)
        assert all(s["sentiment"] in ("negative", "neutral", "positive", None) for s in call["segments"])


@needs_data
def test_shipped_evaluation_calls_are_what_the_builder_makes(tmp_path):
    """stream/samples/eval is exactly the output of the command in its README (so the labels are the builder's)."""
    shipped = Path(__file__).resolve().parents[1] / "stream" / "samples" / "eval"
    build(DATA, tmp_path, ["emovo"], {"escalation": 1, "calm": 1}, fold=None, seed=3, prefix="sample-")
    for f in tmp_path.iterdir():
        assert f.read_bytes() == (shipped / f.name).read_bytes(), f.name
