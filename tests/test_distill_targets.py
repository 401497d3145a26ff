"""The teacher's soft labels for distillation (`onnx_models.distill_targets`): cross-fitting never lets a probe score
a speaker it was fitted on, a task's held-out speakers never get (or give) a target, and the target arithmetic.
Torch-free (runs in CI); synthetic features, no model files."""

import numpy as np
import pytest

from onnx_models.data import Clip, speaker_folds
from onnx_models.distill_targets import (TASKS, clip_means, crossfit_window_targets, file_stem, inner_groups, probe_fitter,
                                         sentiment_targets, task_targets, tempered)
from onnx_models.labels import EMOTIONS
from onnx_models.whisper_probe import Windows


def test_inner_groups_spread_every_corpus_and_sex():
    speakers = [(c, f"{c}-{s}{i}", s) for c, n in (("ravdess", 8), ("emovo", 2), ("emodb", 5)) for s in "fm" for i in range(n // 2 + n % 2)]
    groups = inner_groups(speakers, 4)
    assert set(groups) == {s for _, s, _ in speakers}
    ravdess = [s for c, s, _ in speakers if c == "ravdess"]
    for g in range(4):                          # 8 RAVDESS speakers, 4 of each sex: one of each sex per group
        members = [s for s in ravdess if groups[s] == g]
        assert sorted(m.split("-")[1][0] for m in members) == ["f", "m"]
    assert inner_groups(list(reversed(speakers)), 4) == groups        # deterministic, order-free


def test_tempered_is_softmax_flattened_by_temperature():
    z = np.array([[2.0, 0.0, -1.0], [0.5, 0.4, 3.0]])
    p1 = tempered(z, 1.0)
    np.testing.assert_allclose(p1, np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=1e-6)
    p2 = tempered(z, 2.0)
    np.testing.assert_allclose(p2.sum(1), 1.0, rtol=1e-6)
    assert (p2.argmax(1) == p1.argmax(1)).all() and (p2.max(1) < p1.max(1)).all()
    assert np.isfinite(tempered(np.array([[1e4, 0.0]]), 2.0)).all()


def _recording_fitter(seen: list[set]):
    """Nearest class mean; records the row ids (column 0) it was fitted on."""
    def fit(x, y, corpora):
        seen.append(set(x[:, 0].astype(int).tolist()))
        classes = np.unique(y)
        means = np.stack([x[y == k, 1:].mean(0) for k in classes])
        return (lambda z: -((z[:, None, 1:] - means[None]) ** 2).sum(-1)), classes
    return fit


def test_crossfit_scores_each_group_with_a_model_that_never_saw_it():
    rng = np.random.default_rng(0)
    n = 60
    group = np.repeat(np.arange(4), n // 4)
    y = np.tile(np.array([0, 2, 5]), n // 3)
    x = np.column_stack([np.arange(n), rng.normal(size=(n, 3)) + y[:, None]])
    seen: list[set] = []
    p = crossfit_window_targets(x, y, np.array(["c"] * n), group, _recording_fitter(seen), temperature=1.0)
    assert len(seen) == 4
    for g, rows in enumerate(seen):             # the fit for group g saw every row but group g's
        assert rows == set(np.flatnonzero(group != g).tolist())
    assert p.shape == (n, len(EMOTIONS))
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    assert (p[:, [1, 3, 4, 6, 7]] == 0).all()   # classes no fit saw get no mass
    assert (p.argmax(1) == y).mean() > 0.8


def test_crossfit_targets_behave_like_the_teacher_on_new_speakers():
    """Features = weak class signal + a strong per-speaker offset: a probe scoring its own training speakers is
    right far more often than on new speakers (it has learnt the speakers), so in-sample targets would teach the
    student a confidence the teacher does not have; cross-fitted targets are about as right as on new speakers.
    Why `distill_targets` cross-fits."""
    rng = np.random.default_rng(1)
    speakers, per, d = 18, 24, 40
    spk = np.repeat(np.arange(speakers), per)
    y = np.tile(np.arange(4), speakers * per // 4)
    x = (rng.normal(size=(speakers, d)) * 3)[spk] + 0.6 * np.eye(4, d)[y] + rng.normal(size=(len(y), d))
    train, new = spk < 12, spk >= 12
    corpora = np.array(["c"] * int(train.sum()))
    logits_of, _ = probe_fitter(x[train], y[train], corpora)
    acc_in = (logits_of(x[train]).argmax(1) == y[train]).mean()
    acc_new = (logits_of(x[new]).argmax(1) == y[new]).mean()
    cross = crossfit_window_targets(x[train], y[train], corpora, spk[train] % 4, probe_fitter, temperature=1.0, n_classes=4)
    acc_cross = (cross.argmax(1) == y[train]).mean()
    assert acc_in > acc_new + 0.1
    assert abs(acc_cross - acc_new) < 0.1


def test_clip_means_average_windows_and_refuse_clips_without_windows():
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.8]], np.float32)
    clip = np.array([3, 3, 7])
    np.testing.assert_allclose(clip_means(probs, clip, np.array([7, 3])), [[0.2, 0.8], [0.5, 0.5]])
    with pytest.raises(ValueError, match="no windows"):
        clip_means(probs, clip, np.array([3, 4]))


def test_sentiment_targets_sum_emotions_per_sentiment_and_drop_surprise():
    e = np.zeros((2, len(EMOTIONS)), np.float32)
    e[0, EMOTIONS.index("angry")], e[0, EMOTIONS.index("sad")], e[0, EMOTIONS.index("happy")] = 0.3, 0.3, 0.4
    e[1, EMOTIONS.index("surprised")], e[1, EMOTIONS.index("calm")], e[1, EMOTIONS.index("neutral")] = 0.5, 0.25, 0.25
    np.testing.assert_allclose(sentiment_targets(e), [[0.6, 0.0, 0.4], [0.0, 1.0, 0.0]], rtol=1e-6)


def _windows() -> Windows:
    """Synthetic cache: RAVDESS 6 speakers, EMOVO 6, EmoDB 4 (one bored clip each), two windows per clip and
    channel; features carry the label and the speaker."""
    rng = np.random.default_rng(2)
    clips, clip_ids, chans = [], [], []
    for corpus, n, emotions in (("emovo", 6, ("angry", "happy", "neutral", "sad")), ("ravdess", 6, ("angry", "calm", "happy", "sad")),
                                ("emodb", 4, ("angry", "happy", "sad", "bored"))):
        for s in range(n):
            for e in emotions:
                clips.append(Clip(corpus, f"{corpus}-{'fm'[s % 2]}{s}", "fm"[s % 2], e, np.empty(0, np.float32)))
    for kind in ("clean", "telephone"):
        clip_ids.append(np.repeat(np.arange(len(clips)), 2))
        chans.append(np.full(2 * len(clips), kind))
    clip = np.concatenate(clip_ids)
    onehot = np.array([np.eye(len(EMOTIONS))[EMOTIONS.index(c.emotion)] if c.emotion in EMOTIONS else np.zeros(len(EMOTIONS))
                       for c in (clips[i] for i in clip)], np.float32)
    feats = np.zeros((len(clip), 7, len(EMOTIONS)), np.float16)
    feats[:, 1:6, :] = onehot[:, None, :] + 0.3 * rng.normal(size=(len(clip), 5, len(EMOTIONS)))
    leg = np.array([f"{clips[c].speaker}|{k}" for c, k in zip(clip, np.concatenate(chans))])
    return Windows(feats, clip, np.concatenate(chans), leg, np.zeros(len(clip), int), clips)


@pytest.mark.parametrize("name", ["fold0", "fold2", "ravdess+emodb->emovo", "all"])
def test_task_targets_cover_exactly_the_training_clips_and_never_see_held_out_speakers(name):
    w = _windows()
    x = w.feats[:, 1:6].reshape(len(w.feats), -1).astype(np.float32)
    task = TASKS[name]
    seen: list[set] = []
    fit = _recording_fitter(seen)
    t = task_targets(w, np.column_stack([np.arange(len(x)), x]), task, fit=fit, log=lambda *_: None)
    if task[0] == "fold":
        held = speaker_folds([c for c in w.clips if c.corpus in ("ravdess", "emovo")])[task[1]]
        corpora = {"ravdess", "emovo", "emodb"}
    elif task[0] == "cross":
        held, corpora = set(), {task[1], "emodb"}
    else:
        held, corpora = set(), {"ravdess", "emovo", "emodb"}
    expected = [i for i, c in enumerate(w.clips) if c.corpus in corpora and c.speaker not in held and c.emotion in EMOTIONS]
    assert len(t["emotion"]) == len(expected) and not (set(t["speaker"]) & held)
    firsts = {c: min(i for i, k in enumerate(w.clips) if k.corpus == c) for c in corpora}
    assert sorted(firsts[c] + int(i) for c, i in zip(t["corpus"], t["index"])) == expected
    assert all(w.clips[firsts[c] + int(i)].speaker == s for c, i, s in zip(t["corpus"], t["index"], t["speaker"]))
    speaker_of_row = np.array([w.clips[c].speaker for c in w.clip])
    for rows in seen:                           # no fit saw a held-out speaker, and each fit left speakers out
        spk = set(speaker_of_row[sorted(rows)])
        assert not (spk & held) and spk < set(t["speaker"])
    np.testing.assert_allclose(t["emotion"].sum(1), 1.0, rtol=1e-5)
    assert (t["emotion"].argmax(1) == t["label"]).mean() > 0.6


def _scores(corpora: list[str], ua: float) -> dict:
    level = {"emotion": {"ua": ua, "macro_f1": ua - 0.02}, "sentiment_head": {"ua": ua + 0.1, "macro_f1": ua}}
    return {f"{c}/{b}": {"clip": level, "window": level} for c in corpora for b in ("clean", "telephone")}


def test_distill_report_compares_arms_of_the_same_task_and_applies_the_shipping_rule():
    from onnx_models.distill_report import collect, markdown
    runs = [{"task": "fold0", "arm": "plain", "epochs": 30, "seed": 0, "scores": _scores(["ravdess", "emovo"], 0.50)},
            {"task": "fold0", "arm": "kd", "epochs": 30, "seed": 0, "scores": _scores(["ravdess", "emovo"], 0.56)},
            {"task": "fold1", "arm": "kd", "epochs": 30, "seed": 0, "scores": _scores(["ravdess", "emovo"], 0.90)},   # no plain arm: left out
            {"task": "ravdess+emodb->emovo", "arm": "plain", "epochs": 30, "seed": 0, "scores": _scores(["emovo"], 0.40)},
            {"task": "ravdess+emodb->emovo", "arm": "kd", "epochs": 30, "seed": 0, "scores": _scores(["emovo"], 0.43)}]
    teacher = {"results": {"L1-5/none": {"tasks": [{"task": "fold0", "scores": _scores(["ravdess", "emovo"], 0.7)}]}}}
    shipped = {"folds": [_scores(["ravdess", "emovo"], 0.6)], "cross": {}}
    s = collect(runs, teacher, shipped)
    assert [(c["task"], c["test"]) for c in s["cells"]] == [("fold0", "ravdess"), ("fold0", "emovo"), ("ravdess+emodb->emovo", "emovo")]
    assert s["cells"][0]["kd_minus_plain"]["clean clip UA"] == pytest.approx(0.06)
    assert s["cells"][0]["models"]["teacher"]["telephone clip UA"] == 0.7 and "teacher" not in s["cells"][2]["models"]
    assert s["decision"]["ship"] and s["decision"]["mean_clip_ua_gain"] == pytest.approx(0.05)
    runs[4]["scores"] = _scores(["emovo"], 0.385)              # one cell drops by 0.015: no shipping whatever the mean
    s = collect(runs, teacher, shipped)
    assert s["decision"]["mean_clip_ua_gain"] == pytest.approx(0.035)
    assert not s["decision"]["ship"] and s["decision"]["worst_cell_gain"] == pytest.approx(-0.015)
    assert "do not ship" in markdown(s)


def test_every_task_has_a_portable_file_name():
    stems = [file_stem(t) for t in TASKS]
    assert len(set(stems)) == len(stems) and file_stem("ravdess+emodb->emovo") == "ravdess_emodb_to_emovo"
    assert not any(set(s) & set('<>:"/\\|?*+') for s in stems)
