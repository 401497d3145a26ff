"""The accurate profile's head: logistic regression on Whisper-base's pooled layers, trained on every labelled
window of EMOVO, RAVDESS and EmoDB (both channels), its standardisation folded into the weights. No torch.

    nice -n 15 python -m onnx_models.whisper_head --cache /work/feat/whisper_base_layers --view L1-5 --norm none
    # a head to judge on calls of held-out speakers: without fold 0's speakers (as `train --holdout 0`), or without a corpus
    python -m onnx_models.whisper_head --cache ... --holdout 0 --out /work/feat/head_fold0.npz
    python -m onnx_models.whisper_head --cache ... --exclude-corpus emovo --out /work/feat/head_no_emovo.npz

The saved arrays (``whisper_head.npz``, a few hundred kB) are what `whisper_export profile` puts behind the
truncated encoder: ``layers`` (which pooled states, concatenated), ``norm`` ("none" or "causal"), the training
set's global ``prior_mean`` / ``prior_var`` and ``prior_windows`` (the per-leg warm-up, `whisper_legnorm`),
``emotion_w`` [8, dim] / ``emotion_b`` and ``sentiment_w`` [3, dim] / ``sentiment_b`` on the normalised features.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .data import speaker_folds
from .labels import EMOTIONS, SENTIMENTS
from .whisper_legnorm import DEFAULT_PRIOR_WINDOWS, GlobalStats
from .whisper_probe import NORMS, VIEWS, fit_probe, load_windows, normalised

HEAD_FILE = Path(__file__).with_name("whisper_head.npz")
MISSING_CLASS_BIAS = -1e4       # a class no training clip had gets no probability


def _folded(scaler, lr, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(weights [classes, dim], bias) acting on unstandardised features: the scaler folded in."""
    w = np.zeros((n_classes, lr.coef_.shape[1]))
    b = np.full(n_classes, MISSING_CLASS_BIAS)
    coef = lr.coef_ / scaler.scale_
    w[lr.classes_], b[lr.classes_] = coef, lr.intercept_ - coef @ scaler.mean_
    return w.astype(np.float32), b.astype(np.float32)


def train_head(cache: Path, view: str, norm: str, prior_windows: float = DEFAULT_PRIOR_WINDOWS,
               holdout: int | None = None, exclude_corpora: frozenset[str] = frozenset(),
               exclude_speakers: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """``holdout``: leave out the speakers of that fold (`data.speaker_folds`, as `train --holdout`);
    ``exclude_corpora``: leave those corpora out (a model that never heard their language); ``exclude_speakers``:
    leave these speakers out too (cross-fitted scores of training-fold calls, to tune alert rules on)."""
    if norm not in ("none", "causal"):
        raise ValueError(f"norm {norm!r}: a live call allows 'none' or 'causal' ('speaker' needs the leg's future)")
    w = load_windows(cache)
    unknown = set(exclude_corpora) - {c.corpus for c in w.clips}
    if unknown:
        raise ValueError(f"exclude_corpora {sorted(unknown)}: not in the cache (it holds {sorted({c.corpus for c in w.clips})})")
    unknown = set(exclude_speakers) - {c.speaker for c in w.clips}
    if unknown:
        raise ValueError(f"exclude_speakers {sorted(unknown)}: no such speaker in the cache")
    held = (speaker_folds(w.clips)[holdout] if holdout is not None else set()) | set(exclude_speakers)
    x = w.feats[:, VIEWS[view]].reshape(len(w.feats), -1).astype(np.float32)
    rows = np.flatnonzero([w.clips[c].emotion in EMOTIONS and w.clips[c].speaker not in held
                           and w.clips[c].corpus not in exclude_corpora for c in w.clip])
    prior = GlobalStats.of(x[rows])
    xn = normalised(x, w, norm, rows, prior_windows)
    corpora = np.array([w.clips[c].corpus for c in w.clip[rows]])
    y = np.array([w.clips[c].label for c in w.clip[rows]])
    ys = np.array([w.clips[c].sentiment for c in w.clip[rows]])
    emo_w, emo_b = _folded(*fit_probe(xn[rows], y, corpora), len(EMOTIONS))
    keep = ys >= 0
    sent_w, sent_b = _folded(*fit_probe(xn[rows][keep], ys[keep], corpora[keep]), len(SENTIMENTS))
    return {"layers": np.array(VIEWS[view]), "view": np.array(view), "norm": np.array(norm),
            "prior_mean": prior.mean.astype(np.float32), "prior_var": prior.var.astype(np.float32),
            "prior_windows": np.array(prior_windows, np.float32), "emotion_w": emo_w, "emotion_b": emo_b,
            "sentiment_w": sent_w, "sentiment_b": sent_b, "train_windows": np.array(len(rows)),
            "held_out": np.array(sorted(held), dtype=str), "excluded_corpora": np.array(sorted(exclude_corpora), dtype=str)}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def head_probabilities(head: dict[str, np.ndarray], pooled: np.ndarray, leg_stats: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reference (numpy) of what the exported profile computes after the encoder: pooled [batch, layers, 1024]
    -> (emotion [batch, 8], sentiment [batch, 3]). ``leg_stats`` [batch, 2, dim] (mean, variance; default: the
    prior, i.e. a leg's first window) when the head was trained with causal normalisation."""
    x = pooled[:, head["layers"]].reshape(len(pooled), -1).astype(np.float64)
    if str(head["norm"]) == "causal":
        stats = leg_stats if leg_stats is not None else np.stack([head["prior_mean"], head["prior_var"]])[None]
        x = (x - stats[:, 0]) / np.sqrt(stats[:, 1])
    return _softmax(x @ head["emotion_w"].T + head["emotion_b"]), _softmax(x @ head["sentiment_w"].T + head["sentiment_b"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--view", default="L1-5", choices=list(VIEWS))
    p.add_argument("--norm", default="none", choices=[n for n in NORMS if n != "speaker"],
                   help="causal: the head expects leg_stats; it loses on legs that hold one emotion (whisper_legs)")
    p.add_argument("--prior-windows", type=float, default=DEFAULT_PRIOR_WINDOWS)
    p.add_argument("--holdout", type=int, choices=(0, 1, 2), default=None, help="leave out the speakers of this fold (as train --holdout)")
    p.add_argument("--exclude-corpus", nargs="*", default=[], metavar="NAME", help="leave these corpora out (e.g. emovo)")
    p.add_argument("--exclude-speakers", nargs="*", default=[], metavar="ID", help="leave these speakers out too (e.g. ravdess-02)")
    p.add_argument("--out", type=Path, default=HEAD_FILE)
    args = p.parse_args(argv)
    try:
        head = train_head(args.cache, args.view, args.norm, args.prior_windows, args.holdout, frozenset(args.exclude_corpus),
                          frozenset(args.exclude_speakers))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    np.savez_compressed(args.out, **head)
    print(f"{args.out}: {args.view}, {args.norm}, {int(head['train_windows'])} training windows, "
          f"held out {[str(s) for s in head['held_out']]}, corpora left out {[str(s) for s in head['excluded_corpora']]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
