"""The classic baseline on the same splits: MFCC statistics + SVM (RBF), per clip and per 2 s window.

    python -m onnx_models.baselines --out onnx_models/reports
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.fft import dct
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .data import DEFAULT_DATA, load_all, speaker_folds, windows_of
from .frontend import LogMel
from .labels import EMOTIONS, EMOVO_EMOTIONS, SHARED_EMOTIONS
from .scoring import channel, score

N_MFCC = 13


@torch.no_grad()
def mfcc_stats(windows: np.ndarray) -> np.ndarray:
    """[n, samples] -> [n, 78]: mean and std of 13 MFCCs, their deltas and delta-deltas."""
    logmel = LogMel()(torch.from_numpy(windows)).numpy()                       # mean/var-normalised log-mel
    mfcc = dct(logmel, type=2, axis=1, norm="ortho")[:, :N_MFCC]
    d1 = np.diff(mfcc, axis=2, prepend=mfcc[:, :, :1])
    d2 = np.diff(d1, axis=2, prepend=d1[:, :, :1])
    feats = [f(x, axis=2) for x in (mfcc, d1, d2) for f in (np.mean, np.std)]
    return np.concatenate(feats, axis=1)


def fit_predict(train, test_audio):
    X, y = [], []
    for c in train:
        w = np.stack(windows_of(c.audio))
        X.append(mfcc_stats(w))
        y += [c.label] * len(w)
    clf = make_pipeline(StandardScaler(), SVC(C=3.0, class_weight="balanced", probability=True, random_state=0))
    clf.fit(np.concatenate(X), y)
    emo, sent = [], []
    for a in test_audio:
        p = clf.predict_proba(mfcc_stats(np.stack(windows_of(a))))
        full = np.zeros((len(p), len(EMOTIONS)), np.float32)
        full[:, clf.classes_] = p
        emo.append(full)
        sent.append(np.full((len(p), 3), 1 / 3, np.float32))   # no sentiment head: only the derived one is meaningful
    return emo, sent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("reports"))
    args = p.parse_args(argv)
    clips = load_all(args.data)
    res = {"folds": [], "cross": {}}
    for held in speaker_folds(clips):
        train = [c for c in clips if c.speaker not in held]
        test = [c for c in clips if c.speaker in held]
        r = {}
        for kind in ("clean", "telephone"):
            emo, sent = fit_predict(train, channel(test, kind))
            for corpus, labels in (("ravdess", tuple(EMOTIONS)), ("emovo", EMOVO_EMOTIONS)):
                idx = [i for i, c in enumerate(test) if c.corpus == corpus]
                r[f"{corpus}/{kind}"] = score([test[i] for i in idx], [emo[i] for i in idx], [sent[i] for i in idx], labels)
        res["folds"].append(r)
        print("fold", {k: v["clip"]["emotion"]["ua"] for k, v in r.items()}, flush=True)
    for src, dst in (("ravdess", "emovo"), ("emovo", "ravdess")):
        train = [c for c in clips if c.corpus == src]
        test = [c for c in clips if c.corpus == dst]
        r = {}
        for kind in ("clean", "telephone"):
            emo, sent = fit_predict(train, channel(test, kind))
            r[f"{dst}/{kind}"] = score(test, emo, sent, SHARED_EMOTIONS)
        res["cross"][f"{src}->{dst}"] = r
        print(src, "->", dst, {k: v["clip"]["emotion"]["ua"] for k, v in r.items()}, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval_svm_mfcc.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
