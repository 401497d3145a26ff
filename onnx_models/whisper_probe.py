"""Where is the emotion in Whisper-base? Frozen linear probes on every layer's pooled features, full protocol.

    nice -n 15 python -m onnx_models.whisper_probe --cache /work/feat/whisper_base_layers --out onnx_models/reports

Features: `whisper_features` (mean and standard deviation over time of each layer, per 2 s window the workers would
score, clean and telephone band). Probe: standardised features -> multinomial logistic regression (L2, C fixed in
advance, classes and corpora weighed equally), trained on the windows of the training clips of BOTH channels.
A clip's probabilities are the mean of its windows' (as `scoring` does for the shipped models).

Protocols (as `evaluate` for 0.6.0, which trains with EmoDB added):
- speaker folds: the 3 folds of `data.speaker_folds` over EMOVO and RAVDESS; train on the other speakers of both
  plus all of EmoDB; score RAVDESS on 8 classes, EMOVO on 7; mean over folds.
- leave one corpus out: train on two of EMOVO, RAVDESS and EmoDB, test on every speaker of the third, 6 shared classes.
Normalisation: ``none``; ``speaker`` (z-scored with all of the speaker's windows in that channel: offline, optimistic);
``causal`` (`whisper_legnorm.causal_zscore`: running statistics over the speaker's clips in a random arrival
order, warm-up prior of ``--prior-windows``), for training and test speakers alike.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from .data import Clip, speaker_folds
from .labels import EMOTIONS, EMOVO_EMOTIONS, SHARED_EMOTIONS
from .scoring import derived_sentiment, score
from .whisper_features import CHANNELS, PROBE_CORPORA, cache_path
from .whisper_legnorm import DEFAULT_PRIOR_WINDOWS, GlobalStats, causal_zscore, speaker_zscore

N_LAYERS = 7                       # the input embedding and 6 blocks
VIEWS = {**{f"L{i}": (i,) for i in range(N_LAYERS)}, "L1-5": (1, 2, 3, 4, 5)}
NORMS = ("none", "speaker", "causal")
PROBE_C = 0.1                      # L2 strength, fixed before any test score was seen
MAX_ITER = 300
# What a speaker fold is scored on (as in `evaluate`): RAVDESS on its 8 classes, EMOVO on its 7.
FOLD_LABEL_SETS = {"ravdess": tuple(EMOTIONS), "emovo": EMOVO_EMOTIONS}


@dataclass
class Windows:
    """Every cached window of every corpus and channel, flat."""
    feats: np.ndarray       # [N, layers, 1024] float16
    clip: np.ndarray        # global clip id
    channel: np.ndarray     # "clean" / "telephone"
    leg: np.ndarray         # speaker|channel: one call leg's stream
    order: np.ndarray       # arrival rank within the leg
    clips: list[Clip]       # by global clip id (audio left empty)


def load_windows(cache: Path, corpora=PROBE_CORPORA, order_seed: int = 0) -> Windows:
    """The cached features; each speaker's clips get one random arrival order (the same in both channels)."""
    feats, clip_ids, chans, orders, clips = [], [], [], [], []
    rng = np.random.default_rng(order_seed)
    for corpus in corpora:
        base = len(clips)
        rank = None
        for kind in CHANNELS:
            z = np.load(cache_path(cache, corpus, kind))
            if rank is None:
                clips += [Clip(corpus, s, x, e, np.empty(0, np.float32)) for s, x, e in zip(z["speaker"], z["sex"], z["emotion"])]
                rank = np.empty(len(z["speaker"]), np.int64)
                for spk in np.unique(z["speaker"]):
                    idx = np.flatnonzero(z["speaker"] == spk)
                    rank[idx] = rng.permutation(len(idx))
            within = np.concatenate([np.arange(n) for n in np.bincount(z["clip"], minlength=len(rank))])
            feats.append(z["feats"])
            clip_ids.append(base + z["clip"])
            chans.append(np.full(len(z["clip"]), kind))
            orders.append(rank[z["clip"]] * 1000 + within)
    clip = np.concatenate(clip_ids)
    channel = np.concatenate(chans)
    leg = np.array([f"{clips[c].corpus}/{clips[c].speaker}|{k}" for c, k in zip(clip, channel)])
    return Windows(np.concatenate(feats), clip, channel, leg, np.concatenate(orders), clips)


def tasks(clips: list[Clip]) -> list[tuple]:
    folds = speaker_folds([c for c in clips if c.corpus in FOLD_LABEL_SETS])
    out: list[tuple] = []
    for k, held in enumerate(folds):
        train = {i for i, c in enumerate(clips) if c.speaker not in held and c.emotion in EMOTIONS}
        test = {i for i, c in enumerate(clips) if c.speaker in held}
        out.append((f"fold{k}", train, test, FOLD_LABEL_SETS))
    for dst in PROBE_CORPORA:
        train = {i for i, c in enumerate(clips) if c.corpus != dst and c.emotion in EMOTIONS}
        test = {i for i, c in enumerate(clips) if c.corpus == dst}
        src = "+".join(c for c in PROBE_CORPORA if c != dst)
        out.append((f"{src}->{dst}", train, test, {dst: SHARED_EMOTIONS}))
    return out


def normalised(x: np.ndarray, w: Windows, norm: str, train_rows: np.ndarray, prior_windows: float) -> np.ndarray:
    if norm == "none":
        return x
    if norm == "speaker":
        return speaker_zscore(x, w.leg)
    return causal_zscore(x, w.leg, w.order, GlobalStats.of(x[train_rows]), prior_windows)


def _weights(labels: np.ndarray, corpora: np.ndarray) -> np.ndarray:
    """Every class and every corpus weighs the same in the loss."""
    out = np.ones(len(labels))
    for group in (labels, corpora):
        values, counts = np.unique(group, return_counts=True)
        share = dict(zip(values, len(group) / (len(values) * counts)))
        out *= np.array([share[g] for g in group])
    return out / out.mean()


def fit_probe(x: np.ndarray, y: np.ndarray, corpora: np.ndarray, c: float = PROBE_C):
    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=c, max_iter=MAX_ITER).fit(scaler.transform(x), y, sample_weight=_weights(y, corpora))
    return scaler, lr


def _per_clip(probs: np.ndarray, classes: np.ndarray, width: int, clip_of_row: np.ndarray, clip_ids: list[int]) -> list[np.ndarray]:
    full = np.zeros((len(probs), width), np.float32)
    full[:, classes] = probs
    return [full[clip_of_row == c] for c in clip_ids]


def run_task(x: np.ndarray, w: Windows, task: tuple, sentiment: bool) -> dict:
    name, train, test, label_sets = task
    train_rows = np.flatnonzero(np.isin(w.clip, list(train)))
    corpora = np.array([w.clips[c].corpus for c in w.clip[train_rows]])
    y = np.array([w.clips[c].label for c in w.clip[train_rows]])
    scaler, lr = fit_probe(x[train_rows], y, corpora)
    if sentiment:
        ys = np.array([w.clips[c].sentiment for c in w.clip[train_rows]])
        keep = ys >= 0
        s_scaler, s_lr = fit_probe(x[train_rows][keep], ys[keep], corpora[keep])
    out = {}
    for kind in CHANNELS:
        for corpus, labels in label_sets.items():
            ids = sorted(i for i in test if w.clips[i].corpus == corpus)
            rows = np.flatnonzero(np.isin(w.clip, ids) & (w.channel == kind))
            emo = _per_clip(lr.predict_proba(scaler.transform(x[rows])), lr.classes_, len(EMOTIONS), w.clip[rows], ids)
            if sentiment:
                sent = _per_clip(s_lr.predict_proba(s_scaler.transform(x[rows])), s_lr.classes_, 3, w.clip[rows], ids)
            else:
                sent = [derived_sentiment(e) for e in emo]
            r = score([w.clips[i] for i in ids], emo, sent, labels)
            out[f"{corpus}/{kind}"] = {level: {k: r[level][k] for k in ("emotion", "sentiment_head", "sentiment_derived")} |
                                       ({"per_class_recall": r[level]["per_class_recall"]} if level == "clip" else {})
                                       for level in ("window", "clip")}
    return {"task": name, "train_windows": int(len(train_rows)), "sentiment_probe": sentiment, "scores": out}


def summarise(results: list[dict]) -> dict:
    """UA and macro-F1 per protocol: speaker folds as mean over folds, each left-out corpus, and their mean."""
    out: dict = {}
    folds = [r for r in results if r["task"].startswith("fold")]
    loco = [r for r in results if "->" in r["task"]]
    for level in ("clip", "window"):
        for kind in CHANNELS:
            for corpus in FOLD_LABEL_SETS:
                for metric, path in (("ua", ("emotion", "ua")), ("f1", ("emotion", "macro_f1")), ("sent_ua", ("sentiment_head", "ua"))):
                    vals = [r["scores"][f"{corpus}/{kind}"][level][path[0]][path[1]] for r in folds]
                    out[f"{corpus} {kind} {level} {metric}"] = round(float(np.mean(vals)), 4)
            for metric, path in (("ua", ("emotion", "ua")), ("f1", ("emotion", "macro_f1")), ("sent_ua", ("sentiment_head", "ua"))):
                vals = []
                for r in loco:
                    dst = r["task"].split("->")[1]
                    v = r["scores"][f"{dst}/{kind}"][level][path[0]][path[1]]
                    out[f"loco {dst} {kind} {level} {metric}"] = v
                    vals.append(v)
                out[f"loco mean {kind} {level} {metric}"] = round(float(np.mean(vals)), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--views", nargs="+", default=list(VIEWS), choices=list(VIEWS))
    p.add_argument("--norms", nargs="+", default=list(NORMS), choices=NORMS)
    p.add_argument("--sentiment", action="store_true", help="also train a sentiment probe (else sentiment is derived from emotion)")
    p.add_argument("--prior-windows", type=float, default=DEFAULT_PRIOR_WINDOWS)
    p.add_argument("--order-seed", type=int, default=0, help="seed of each speaker's random clip arrival order")
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = p.parse_args(argv)
    w = load_windows(args.cache, order_seed=args.order_seed)
    task_list = tasks(w.clips)
    report = {"probe": {"C": PROBE_C, "max_iter": MAX_ITER, "prior_windows": args.prior_windows, "order_seed": args.order_seed,
                        "sentiment": "probe" if args.sentiment else "derived from emotion"},
              "windows": {k: int((w.channel == k).sum()) for k in CHANNELS}, "results": {}}
    for view in args.views:
        x = w.feats[:, VIEWS[view]].reshape(len(w.feats), -1).astype(np.float32)
        for norm in args.norms:
            t0 = time.time()
            results = []
            for task in task_list:
                train_rows = np.flatnonzero(np.isin(w.clip, list(task[1])))
                results.append(run_task(normalised(x, w, norm, train_rows, args.prior_windows), w, task, args.sentiment))
            summary = summarise(results)
            report["results"][f"{view}/{norm}"] = {"summary": summary, "tasks": results, "seconds": round(time.time() - t0, 1)}
            loco = " ".join(f"{d} {summary['loco ' + d + ' clean clip ua']:.3f}" for d in PROBE_CORPORA)
            print(f"{view:5s} {norm:8s} folds RAVDESS {summary['ravdess clean clip ua']:.3f} EMOVO {summary['emovo clean clip ua']:.3f} | "
                  f"LOCO {loco} mean {summary['loco mean clean clip ua']:.3f} (tel {summary['loco mean telephone clip ua']:.3f}) "
                  f"[{time.time() - t0:.0f} s]", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
