"""Scoring a model's predictions: unweighted accuracy and macro-F1 of emotion and of sentiment (from the sentiment
head and derived from the emotion probabilities), per 2 s window and per clip, per class and per sex; and the
clean / telephone test channels. Shared by `evaluate` (the trained networks) and `score_onnx` (the shipped ONNX
files), so both are scored by the same code."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

from .augment import telephone_band
from .data import Clip, windows_of
from .labels import EMOTIONS

NEG, NEU, POS = ([EMOTIONS.index(e) for e in ("angry", "disgust", "fearful", "sad")],
                 [EMOTIONS.index(e) for e in ("neutral", "calm")], [EMOTIONS.index("happy")])

Predictions = dict[str, tuple[list[np.ndarray], list[np.ndarray]]]   # channel -> (emotion, sentiment) per clip


def channel(clips: list[Clip], kind: str) -> list[np.ndarray]:
    if kind == "clean":
        return [c.audio for c in clips]
    return [telephone_band(c.audio, "mulaw" if i % 2 == 0 else "alaw") for i, c in enumerate(clips)]


def predict_windows(probabilities: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], audios: list[np.ndarray],
                    batch: int = 256) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Cut each clip into the windows a worker scores, run ``probabilities`` (float32 windows [n, samples] ->
    emotion [n, E], sentiment [n, 3]) over them in batches, and return the windows' probabilities per clip."""
    wins = [windows_of(a) for a in audios]
    flat = np.stack([w for ws in wins for w in ws])
    emo, sent = zip(*(probabilities(flat[i:i + batch]) for i in range(0, len(flat), batch)))
    ends = np.cumsum([len(ws) for ws in wins])[:-1]
    return np.split(np.concatenate(emo), ends), np.split(np.concatenate(sent), ends)


def shared_labels(clips: list[Clip], model_labels: tuple[str, ...] = EMOTIONS) -> tuple[str, ...]:
    """The emotions both a corpus and the model know, in the model's order: what a corpus is scored on."""
    present = {c.emotion for c in clips}
    return tuple(e for e in model_labels if e in present)


def derived_sentiment(emo: np.ndarray) -> np.ndarray:
    return np.stack([emo[:, NEG].sum(1), emo[:, NEU].sum(1), emo[:, POS].sum(1)], axis=1)


def _scores(y: list[int], p: list[int], labels: list[int]) -> dict:
    return {"ua": round(float(balanced_accuracy_score(y, p)), 4),
            "macro_f1": round(float(f1_score(y, p, labels=labels, average="macro", zero_division=0)), 4), "n": len(y)}


def score(clips: list[Clip], emo: list[np.ndarray], sent: list[np.ndarray], label_set: tuple[str, ...]) -> dict:
    """Emotion on ``label_set`` (predictions restricted to it), sentiment derived and from its head; per window
    and per clip (mean of window probabilities); per class recall and per sex UA at clip level."""
    cols = [EMOTIONS.index(e) for e in label_set]
    keep = [i for i, c in enumerate(clips) if c.emotion in label_set]
    res: dict = {"labels": list(label_set)}
    for level in ("window", "clip"):
        y, p, ys, pd, ph, sex = [], [], [], [], [], []
        for i in keep:
            e, s = emo[i], sent[i]
            if level == "clip":
                e, s = e.mean(0, keepdims=True), s.mean(0, keepdims=True)
            y += [cols.index(EMOTIONS.index(clips[i].emotion))] * len(e)
            p += list(np.argmax(e[:, cols], 1))
            sex += [clips[i].sex] * len(e)
            if clips[i].sentiment >= 0:
                ys += [clips[i].sentiment] * len(e)
                pd += list(np.argmax(derived_sentiment(e), 1))
                ph += list(np.argmax(s, 1))
        r = {"emotion": _scores(y, p, list(range(len(cols)))),
             "sentiment_derived": _scores(ys, pd, [0, 1, 2]), "sentiment_head": _scores(ys, ph, [0, 1, 2])}
        if level == "clip":
            cm = confusion_matrix(y, p, labels=list(range(len(cols))))
            r["per_class_recall"] = {label_set[j]: round(float(cm[j, j] / max(cm[j].sum(), 1)), 3) for j in range(len(cols))}
            r["per_sex_ua"] = {s: round(float(balanced_accuracy_score([a for a, b in zip(y, sex) if b == s], [a for a, b in zip(p, sex) if b == s])), 4)
                               for s in sorted(set(sex))}
            r["confusion"] = cm.tolist()
        res[level] = r
    return res


def score_channels(test: list[Clip], preds: Predictions, label_sets: dict[str, tuple[str, ...]]) -> dict:
    out = {}
    for kind, (emo, sent) in preds.items():
        for name, labels in label_sets.items():
            subset = [i for i, c in enumerate(test) if c.corpus == name or name == "both"]
            out[f"{name}/{kind}"] = score([test[i] for i in subset], [emo[i] for i in subset], [sent[i] for i in subset], labels)
    return out
