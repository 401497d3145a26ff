"""The teacher's soft labels for distillation: the frozen Whisper-base probe (layers 1-5 pooled, no normalisation,
`whisper_probe.fit_probe`) predicts every training clip of a task from a probe that never saw that clip's speaker.

    nice -n 10 python -m onnx_models.distill_targets --cache /work/feat/whisper_base_layers --out /work/feat/distill

For each task (`distill.TASKS`: the 3 speaker folds, the 2 leave-one-corpus-out directions) the task's training
speakers (EmoDB always among them, as for 0.6.0) are dealt into ``--groups`` inner groups per corpus; a probe fitted
on the other groups' windows scores each group's windows (cross-fitting: in-sample probe outputs are
over-confident, and the held-out speakers of the task are never seen at all). A window's target is the softmax
of the probe's logits at the temperature; a clip's target is the mean over its windows in both channels (the
student trains on random crops, clean or telephone, so it gets the clip's distribution). Written per task as
``{file_stem(task)}.npz``: ``corpus``, ``index`` (the clip's row in `data.load_corpus` order), ``emotion`` [clips, 8].
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .labels import EMOTIONS, SENTIMENT_OF

TEMPERATURE = 2.0          # fixed a priori (Hinton et al.'s usual range), not tuned on any test speaker
INNER_GROUPS = 4
PROBE_VIEW = (1, 2, 3, 4, 5)   # the layers of the shipped accurate profile's head (whisper_head)
# Tasks as `evaluate` names them: hold out fold k's speakers, or train on one corpus (plus EmoDB) and test another.
TASKS: dict[str, tuple] = {"fold0": ("fold", 0), "fold1": ("fold", 1), "fold2": ("fold", 2),
                           "ravdess+emodb->emovo": ("cross", "ravdess", "emovo"),
                           "emovo+emodb->ravdess": ("cross", "emovo", "ravdess"),
                           "all": ("all",)}          # every speaker: the targets of a shipping student
EXTRA_CORPUS = "emodb"



def file_stem(task: str) -> str:
    """A task's name as a portable file name ('ravdess+emodb->emovo' -> 'ravdess_emodb_to_emovo')."""
    return task.replace("->", "_to_").replace("+", "_")


# (features [n, d], labels [n], corpora [n]) -> a function of features giving logits [m, n_classes_seen], classes seen
Fitter = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]]


def inner_groups(speakers: list[tuple[str, str, str]], n_groups: int = INNER_GROUPS) -> dict[str, int]:
    """(corpus, speaker, sex) triples -> speaker's group: per corpus and sex, the speakers sorted and dealt
    round-robin, the count running on across sexes and corpora, so every group gets its share of every corpus
    and of both sexes (where there are enough speakers) and the groups' sizes differ by at most one."""
    out: dict[str, int] = {}
    for corpus, sex, spk in sorted({(c, x, s) for c, s, x in speakers}):
        if spk not in out:
            out[spk] = len(out) % n_groups
    return out


def tempered(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def crossfit_window_targets(x: np.ndarray, y: np.ndarray, corpora: np.ndarray, group: np.ndarray, fit: Fitter,
                            temperature: float = TEMPERATURE, n_classes: int = len(EMOTIONS)) -> np.ndarray:
    """Tempered probabilities [n, n_classes] of every row, each from a model fitted on the rows of the OTHER
    groups only; classes a fit never saw get probability 0."""
    out = np.zeros((len(x), n_classes), np.float32)
    for g in np.unique(group):
        held = group == g
        logits_of, classes = fit(x[~held], y[~held], corpora[~held])
        p = tempered(logits_of(x[held]), temperature)
        out[np.ix_(np.flatnonzero(held), classes)] = p
    return out


def clip_means(window_probs: np.ndarray, clip_of_row: np.ndarray, clip_ids: np.ndarray) -> np.ndarray:
    """Per clip in ``clip_ids`` (each must have windows): the mean of its windows' distributions."""
    missing = set(clip_ids.tolist()) - set(clip_of_row.tolist())
    if missing:
        raise ValueError(f"clips {sorted(missing)[:5]} have no windows: cannot give them a teacher target")
    return np.stack([window_probs[clip_of_row == c].mean(axis=0) for c in clip_ids])


def sentiment_targets(emotion: np.ndarray) -> np.ndarray:
    """The teacher's sentiment distribution from its emotion distribution (surprise has no sentiment: its mass
    is dropped and the rest renormalised)."""
    m = np.zeros((len(EMOTIONS), 3), np.float32)
    for e, s in SENTIMENT_OF.items():
        if e in EMOTIONS:
            m[EMOTIONS.index(e), s] = 1
    s = emotion @ m
    return s / np.maximum(s.sum(axis=1, keepdims=True), 1e-8)


def training_corpora(task: tuple) -> tuple[str, ...]:
    return (task[1], EXTRA_CORPUS) if task[0] == "cross" else ("ravdess", "emovo", EXTRA_CORPUS)


def probe_fitter(x: np.ndarray, y: np.ndarray, corpora: np.ndarray) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """The probe of `whisper_probe` (standardised features, L2 logistic regression, classes and corpora balanced)."""
    from .whisper_probe import fit_probe
    scaler, lr = fit_probe(x, y, corpora)
    return (lambda z: lr.decision_function(scaler.transform(z))), lr.classes_


def task_targets(w, x: np.ndarray, task: tuple, fit: Fitter = probe_fitter, log=print) -> dict[str, np.ndarray]:
    """The cross-fitted clip targets of one task's training clips. ``w``: `whisper_probe.Windows`."""
    from .data import speaker_folds
    held = speaker_folds([c for c in w.clips if c.corpus in ("ravdess", "emovo")])[task[1]] if task[0] == "fold" else set()
    keep = [i for i, c in enumerate(w.clips) if c.corpus in training_corpora(task) and c.speaker not in held and c.emotion in EMOTIONS]
    groups = inner_groups([(w.clips[i].corpus, w.clips[i].speaker, w.clips[i].sex) for i in keep])
    rows = np.flatnonzero(np.isin(w.clip, keep))
    clip_of_row = w.clip[rows]
    y = np.array([w.clips[c].label for c in clip_of_row])
    corpora = np.array([w.clips[c].corpus for c in clip_of_row])
    group = np.array([groups[w.clips[c].speaker] for c in clip_of_row])
    t0 = time.time()
    probs = crossfit_window_targets(x[rows], y, corpora, group, fit)
    log(f"  {len(keep)} clips, {len(rows)} windows, {len(np.unique(group))} groups, {time.time() - t0:.0f} s")
    ids = np.array(keep)
    firsts = {corpus: min(i for i, c in enumerate(w.clips) if c.corpus == corpus) for corpus in {w.clips[i].corpus for i in keep}}
    return {"corpus": np.array([w.clips[i].corpus for i in ids]), "index": np.array([i - firsts[w.clips[i].corpus] for i in ids]),
            "speaker": np.array([w.clips[i].speaker for i in ids]), "label": np.array([w.clips[i].label for i in ids]),
            "emotion": clip_means(probs, clip_of_row, ids)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, required=True, help="whisper_features cache")
    p.add_argument("--out", type=Path, required=True, help="folder for {task}.npz")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    args = p.parse_args(argv)
    from .whisper_probe import load_windows
    w = load_windows(args.cache)
    x = w.feats[:, PROBE_VIEW].reshape(len(w.feats), -1).astype(np.float32)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.tasks:
        print(f"{name}:", flush=True)
        t = task_targets(w, x, TASKS[name], log=lambda m: print(m, flush=True))
        np.savez(args.out / f"{file_stem(name)}.npz", temperature=TEMPERATURE, groups=INNER_GROUPS, **t)
        top = t["emotion"].argmax(1)
        print(json.dumps({"task": name, "clips": len(top), "teacher_top1_agrees_with_label": round(float((top == t["label"]).mean()), 3),
                          "mean_max_prob": round(float(t["emotion"].max(1).mean()), 3)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
