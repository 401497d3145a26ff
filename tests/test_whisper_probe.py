"""The layer probe's protocol and the per-leg normalisation, on synthetic pooled features (no model, no corpora)."""

import numpy as np
import pytest

from onnx_models import whisper_probe as wp
from onnx_models.labels import EMOTIONS
from onnx_models.whisper_legnorm import GlobalStats, causal_zscore, running_zscore, speaker_zscore

DIM = 12


def test_running_zscore_is_causal_and_converges_to_the_legs_statistics():
    rng = np.random.default_rng(0)
    leg = rng.normal(5.0, 2.0, size=(400, 3))
    prior = GlobalStats(np.zeros(3), np.ones(3))
    z = running_zscore(leg, prior, prior_windows=10)
    # causal: changing the future never changes the past
    changed = leg.copy()
    changed[200:] += 100
    np.testing.assert_array_equal(running_zscore(changed, prior, 10)[:200], z[:200])
    # first window: the global statistics; second: the first window against 10 prior ones
    np.testing.assert_allclose(z[0], leg[0], rtol=1e-6)
    m, v = leg[0, 0] / 11, 10 / 11 + leg[0, 0] ** 2 / 11 - (leg[0, 0] / 11) ** 2
    assert abs(z[1, 0] - (leg[1, 0] - m) / np.sqrt(v)) < 1e-4
    # late windows: the leg's own statistics dominate
    np.testing.assert_allclose(z[300:].mean(0), 0.0, atol=0.25)
    np.testing.assert_allclose(z[300:].std(0), 1.0, atol=0.15)


def test_causal_zscore_follows_arrival_order_per_group():
    x = np.arange(6, dtype=np.float64)[:, None] * np.ones((1, 2))
    groups = np.array(["a", "b", "a", "b", "a", "b"])
    order = np.array([2, 0, 1, 1, 0, 2])
    prior = GlobalStats(np.zeros(2), np.ones(2))
    out = causal_zscore(x, groups, order, prior, 3)
    a_rows = np.array([4, 2, 0])            # group a in arrival order
    np.testing.assert_allclose(out[a_rows], running_zscore(x[a_rows], prior, 3), rtol=1e-6)
    offline = speaker_zscore(x, groups)
    np.testing.assert_allclose(offline[a_rows].mean(0), 0, atol=1e-6)


def _synthetic_windows(rng) -> wp.Windows:
    """Three corpora of speakers whose features = emotion direction + a large per-speaker offset + noise."""
    emotion_dir = {e: rng.normal(0, 1.0, DIM) for e in EMOTIONS}
    spec = {"emovo": (6, ("angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised")),
            "ravdess": (6, EMOTIONS), "emodb": (4, ("angry", "disgust", "fearful", "happy", "neutral", "sad"))}
    feats, clip, channel, leg, order, clips = [], [], [], [], [], []
    for corpus, (n_spk, emotions) in spec.items():
        for s in range(n_spk):
            speaker, sex = f"{corpus}_{s}", "fm"[s % 2]
            offset = rng.normal(0, 4.0, DIM)
            for rep in range(4):
                for e in emotions:
                    cid = len(clips)
                    clips.append(wp.Clip(corpus, speaker, sex, e, np.empty(0, np.float32)))
                    for kind in wp.CHANNELS:
                        for k in range(2):
                            v = emotion_dir[e] + offset + rng.normal(0, 0.8, DIM)
                            feats.append(np.tile(v, (wp.N_LAYERS, 2))[:, :2 * DIM])
                            clip.append(cid)
                            channel.append(kind)
                            leg.append(f"{corpus}/{speaker}|{kind}")
                            order.append(int(rng.integers(0, 10 ** 6)))
    return wp.Windows(np.array(feats, np.float16), np.array(clip), np.array(channel), np.array(leg), np.array(order), clips)


def test_probe_protocol_runs_every_task_and_speaker_normalisation_removes_speaker_offsets():
    rng = np.random.default_rng(1)
    w = _synthetic_windows(rng)
    task_list = wp.tasks(w.clips)
    assert [t[0] for t in task_list] == ["fold0", "fold1", "fold2", "ravdess+emodb->emovo", "emovo+emodb->ravdess", "emovo+ravdess->emodb"]
    for name, train, test, _ in task_list:
        assert not {w.clips[i].speaker for i in train} & {w.clips[i].speaker for i in test}, name
    x = w.feats[:, wp.VIEWS["L1-5"]].reshape(len(w.feats), -1).astype(np.float32)
    ua, tables = {}, {}
    for norm in wp.NORMS:
        results = []
        for task in task_list:
            rows = np.flatnonzero(np.isin(w.clip, list(task[1])))
            results.append(wp.run_task(wp.normalised(x, w, norm, rows, 10), w, task, sentiment=norm == "speaker"))
        summary = wp.summarise(results)
        ua[norm] = summary["loco mean clean clip ua"]
        tables[f"L1-5/{norm}"] = {"summary": summary}
        assert 0.0 <= summary["emovo telephone window f1"] <= 1.0
    assert ua["speaker"] > ua["none"] + 0.2
    assert ua["causal"] > ua["none"] + 0.1
    assert ua["speaker"] > 0.8
    from onnx_models.whisper_report import detail_table, layer_table
    rows = layer_table(tables).splitlines()
    assert len(rows) == 3 and rows[2].startswith("| L1-5 |") and f"{ua['causal']:.3f}" in rows[2]
    assert len(detail_table(tables, "L1-5").splitlines()) == 2 + 3 * 4


def test_weights_balance_classes_and_corpora():
    w = wp._weights(np.array([0, 0, 0, 1]), np.array(["a"] * 4))
    assert w[:3].sum() == pytest.approx(w[3])
    w = wp._weights(np.array([0] * 4), np.array(["a", "a", "a", "b"]))
    assert w[:3].sum() == pytest.approx(w[3])
    assert w.mean() == pytest.approx(1.0)


def test_leg_state_gives_the_same_normalisation_as_the_offline_causal_rule():
    from onnx_models.whisper_legnorm import LegState
    rng = np.random.default_rng(2)
    leg = rng.normal(3.0, 1.5, size=(30, 4))
    prior = GlobalStats(rng.normal(size=4), rng.uniform(0.5, 2.0, size=4))
    state, got = LegState(prior, 7), []
    for x in leg:
        mean, var = state.stats()
        got.append((x - mean) / np.sqrt(var))
        state.add(x)
    np.testing.assert_allclose(np.array(got), running_zscore(leg, prior, 7), rtol=1e-4, atol=1e-4)


def test_sustained_legs_expose_what_per_leg_centring_cancels():
    """On synthetic speakers (emotion direction + speaker offset), every scenario is scored, and a leg that holds
    one emotion only loses to the balanced leg: the running mean absorbs the emotion's offset."""
    from onnx_models import whisper_legs
    w = _synthetic_windows(np.random.default_rng(3))
    w.feats = w.feats.copy()
    out = whisper_legs.run(w, "L1", prior_windows=2)
    s = whisper_legs.summary(out)
    assert set(out) == set(whisper_legs.SCENARIOS)
    assert s["sustained loco mean clean"] < s["balanced loco mean clean"] - 0.2
    assert s["neutral_first loco mean clean"] > s["sustained loco mean clean"]


def test_committed_profile_head_is_consistent():
    """The accurate profile's committed head: shapes agree with its layers, probabilities are proper."""
    from onnx_models.whisper_head import HEAD_FILE, head_probabilities
    head = dict(np.load(HEAD_FILE))
    dim = len(head["layers"]) * 1024
    assert str(head["norm"]) in ("none", "causal")
    assert head["emotion_w"].shape == (len(EMOTIONS), dim) and head["sentiment_w"].shape == (3, dim)
    assert head["prior_mean"].shape == head["prior_var"].shape == (dim,) and (head["prior_var"] > 0).all()
    pooled = np.random.default_rng(4).normal(0, 1, (5, 7, 1024)) * np.sqrt(head["prior_var"].mean())
    emo, sent = head_probabilities(head, pooled)
    np.testing.assert_allclose(emo.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(sent.sum(1), 1, atol=1e-6)


def test_running_zscore_variants_freeze_and_keep_the_mean():
    rng = np.random.default_rng(5)
    leg = rng.normal(2.0, 1.0, size=(40, 3))
    prior = GlobalStats(np.zeros(3), np.ones(3))
    frozen = running_zscore(leg, prior, 4, freeze_after=5)
    np.testing.assert_allclose(frozen[:6], running_zscore(leg, prior, 4)[:6], rtol=1e-6)
    # after the 5th window the statistics stop moving: z is an affine map of x with fixed coefficients
    a = (frozen[6:] - frozen[5]) / (leg[6:] - leg[5])
    np.testing.assert_allclose(a, np.broadcast_to(a[0], a.shape), rtol=1e-5)
    # center=False subtracts the prior mean, so a leg shifted by +2 stays shifted
    assert running_zscore(leg, prior, 4, center=False)[20:].mean() > 1.0 > abs(running_zscore(leg, prior, 4)[20:].mean())
