"""Render the measured tables into MODEL_CARD.md (between the tables markers) from reports/*.json.

    python -m onnx_models.report
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .evaluate import fold_stat, headline

HERE = Path(__file__).parent
REPORTS = HERE / "reports"
START, END = "<!-- tables:start -->", "<!-- tables:end -->"


def ms(d: dict) -> str:
    return f"{d['mean']:.3f} ± {d['std']:.3f}"


def table(rows: list[list[str]], head: list[str]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def models_table(evals: dict) -> str:
    """What was compared: parameters and training recipe of each model in the tables."""
    from .models import ARCHITECTURES
    rows = []
    for name, r in evals.items():
        arch = r.get("arch")
        if arch in ARCHITECTURES:
            params = sum(p.numel() for p in ARCHITECTURES[arch]().parameters())
            seeds = r["seed"] if isinstance(r["seed"], list) else [r["seed"]]
            extra = (f", speed perturbation ±{r['speed'] * 100:g} %" if r.get("speed") else "") + (
                f", feature mixup Beta({r['mixup']:g}, {r['mixup']:g})" if r.get("mixup") else "") + (
                f", {' and '.join(r['extra_train'])} added to every training set" if r.get("extra_train") else "")
            if len(seeds) == 1:
                rows.append([name, ARCHITECTURES[arch].__name__, f"{params / 1e3:.0f} k", f"{r['epochs']} epochs, seed {seeds[0]}{extra}"])
            else:
                rows.append([name, f"{len(seeds)} x {ARCHITECTURES[arch].__name__}, mean of probabilities", f"{len(seeds)} x {params / 1e3:.0f} k",
                             f"{r['epochs']} epochs, seeds {', '.join(map(str, seeds))}{extra}"])
        else:
            rows.append([name, "MFCC statistics + RBF SVM (baselines.py)", "-", "-"])
    return "### Models compared (same folds, same test clips)\n\n" + table(rows, ["model", "class", "parameters", "training"])


def members_table(evals: dict) -> str | None:
    """Ensembles: each seed alone, the ensembles of the first k seeds and all of them, on the same folds (clean clips, UA)."""
    rows = []
    for name, r in evals.items():
        if "members" not in r:
            continue
        for member, h in {**r["members"], "all seeds (the ensemble)": headline(r["summary"])}.items():
            cross = [next(v for k, v in h.items() if k.startswith("cross ") and k.endswith(f"->{dst}")) for dst in ("emovo", "ravdess")]
            rows.append([name, member] + [f"{v:.3f}" for v in (h["ravdess_ua"], h["emovo_ua"], *cross, h["ravdess_sentiment_ua"], h["emovo_sentiment_ua"])])
    if not rows:
        return None
    return ("### Seed ensembles: each network alone and the mean of the first k (clean clips, UA; folds: mean over the 3)\n\n" + table(
        rows, ["model", "networks", "RAVDESS 8-class", "EMOVO 7-class", "other corpus → EMOVO", "other corpus → RAVDESS", "sentiment RAVDESS",
               "sentiment EMOVO"]))


def unseen_tables(evals: dict) -> list[str]:
    """Corpora no training saw: shipped files (reports/unseen_<corpus>_<version>.json, written by `score_onnx --json`
    for a corpus that version never trained on) and the protocol's models (evaluations run with ``--unseen``)."""
    parts, rows = [], []
    for path in sorted(REPORTS.glob("unseen_*.json")):
        u = json.loads(path.read_text())
        c, t = u["clean"]["clip"], u["telephone"]["clip"]
        rows.append([u["corpus"], u["model_version"], f"{u['clips']} clips ({c['emotion']['n']} of a scored emotion), {u['speakers']} speakers", f"{len(u['labels'])}: {', '.join(u['labels'])}",
                     f"{c['emotion']['ua']:.3f}", f"{c['emotion']['macro_f1']:.3f}", f"{t['emotion']['ua']:.3f}",
                     f"{c['sentiment_head']['ua']:.3f} / {t['sentiment_head']['ua']:.3f}", f"{c['per_sex_ua']['f']:.3f} / {c['per_sex_ua']['m']:.3f}"])
    if rows:
        parts.append("### Corpora the shipped files never trained on, through the ONNX contract (`score_onnx`), clips\n\n" + table(
            rows, ["corpus", "models", "size", "emotion classes scored", "UA clean", "macro-F1 clean", "UA telephone", "sentiment UA clean / telephone",
                   "UA women / men"]))
    columns = (("clean", "emotion", "ua"), ("clean", "emotion", "macro_f1"), ("telephone", "emotion", "ua"), ("clean", "sentiment_head", "ua"))
    rows = []
    for name, r in evals.items():
        for corpus in sorted({k.split("/")[0] for k in r["folds"][0].get("unseen", {})}):
            rows.append([name, f"both corpora, 3 folds → {corpus}"] + [
                ms(fold_stat(r, ("unseen", f"{corpus}/{kind}", "clip", head, metric))) for kind, head, metric in columns])
            for pair, res in r["cross"].items():
                rows.append([name, f"{pair.split('->')[0]} only → {corpus}"] + [
                    f"{res['unseen'][f'{corpus}/{kind}']['clip'][head][metric]:.3f}" for kind, head, metric in columns])
    if rows:
        parts.append("### The protocol's models on a corpus no training saw (shared emotion classes, clips)\n\n" + table(
            rows, ["model", "trained on → tested on", "UA clean", "macro-F1 clean", "UA telephone", "sentiment UA clean"]))
    return parts


def main() -> int:
    evals = {p.stem.removeprefix("eval_"): json.loads(p.read_text()) for p in sorted(REPORTS.glob("eval_*.json"))}
    parts = [models_table(evals)]
    ensembles = members_table(evals)
    if ensembles:
        parts.append(ensembles)
    rows = []
    for name, r in evals.items():
        for corpus, k in (("RAVDESS (8 classes)", "ravdess"), ("EMOVO (7 classes)", "emovo")):
            cells = [name, corpus]
            for kind in ("clean", "telephone"):
                for level in ("window", "clip"):
                    cells.append(ms(fold_stat(r, (f"{k}/{kind}", level, "emotion", "ua"))))
            cells.append(ms(fold_stat(r, (f"{k}/clean", "clip", "emotion", "macro_f1"))))
            rows.append(cells)
    parts.append("### Emotion, speakers held out (3 folds, mean ± std of unweighted accuracy)\n\n" + table(
        rows, ["model", "test set", "UA clean, 2 s windows", "UA clean, clips", "UA telephone, windows", "UA telephone, clips", "macro-F1 clean, clips"]))
    rows = []
    for name, r in evals.items():
        for pair, res in r["cross"].items():
            dst = pair.split("->")[1]
            cells = [name, pair.replace("->", " → ")]
            for kind in ("clean", "telephone"):
                for level in ("window", "clip"):
                    cells.append(f"{res[f'{dst}/{kind}'][level]['emotion']['ua']:.3f}")
            cells.append(f"{res[f'{dst}/clean']['clip']['emotion']['macro_f1']:.3f}")
            rows.append(cells)
    parts.append("### Emotion across corpora (6 shared classes; trained on one corpus (`+emodb`: and EmoDB), tested on every speaker of the other)\n\n" + table(
        rows, ["model", "train → test", "UA clean, windows", "UA clean, clips", "UA telephone, windows", "UA telephone, clips", "macro-F1 clean, clips"]))
    parts += unseen_tables(evals)
    rows = []
    for name, r in evals.items():
        if name == "svm_mfcc":
            continue
        for k, corpus in (("ravdess", "RAVDESS"), ("emovo", "EMOVO")):
            rows.append([name, corpus,
                         ms(fold_stat(r, (f"{k}/clean", "clip", "sentiment_head", "ua"))), ms(fold_stat(r, (f"{k}/clean", "clip", "sentiment_head", "macro_f1"))),
                         ms(fold_stat(r, (f"{k}/telephone", "clip", "sentiment_head", "ua"))),
                         ms(fold_stat(r, (f"{k}/clean", "clip", "sentiment_derived", "ua"))), ms(fold_stat(r, (f"{k}/telephone", "clip", "sentiment_derived", "ua")))])
    parts.append("### Sentiment (3 classes: negative, neutral, positive; surprised clips excluded), speakers held out\n\n" + table(
        rows, ["model", "test set", "UA own head, clean", "macro-F1 own head, clean", "UA own head, telephone", "UA derived from emotion, clean", "UA derived, telephone"]))
    for name, r in evals.items():
        if name == "svm_mfcc":
            continue
        rows = []
        for k, corpus in (("ravdess", "RAVDESS"), ("emovo", "EMOVO")):
            labels = r["folds"][0][f"{k}/clean"]["labels"]
            recall = {lab: np.mean([f[f"{k}/clean"]["clip"]["per_class_recall"][lab] for f in r["folds"]]) for lab in labels}
            sexes = {s: np.mean([f[f"{k}/clean"]["clip"]["per_sex_ua"][s] for f in r["folds"]]) for s in ("f", "m")}
            rows.append([corpus, ", ".join(f"{lab} {v:.2f}" for lab, v in recall.items()), f"{sexes['f']:.3f}", f"{sexes['m']:.3f}"])
        parts.append(f"### Per class (recall) and per sex (UA), clean clips, {name}, mean over folds\n\n" + table(rows, ["test set", "recall per class", "UA women", "UA men"]))
    cost = REPORTS / "cost.json"
    if cost.exists():
        c = json.loads(cost.read_text())
        rows = [[n, f"{c[n]['bytes'] / 1e3:.0f} kB", f"{c[n]['ms_per_2s_window_batch1']:.3f}", f"{c[n]['ms_per_2s_window_batch32']:.3f}"] for n in ("emotion.onnx", "sentiment.onnx")]
        parts.append("### Cost on one CPU core (onnxruntime, 1 intra-op thread, 2 s windows at 8 kHz)\n\n" + table(rows, ["file", "size", "ms / window, batch 1", "ms / window, batch 32"]))
        if "fold0_int8" in c:
            rows = [[v, f"{c[f'fold0_{v}']['ravdess/clean']:.3f}", f"{c[f'fold0_{v}']['emovo/clean']:.3f}", f"{c[f'fold0_{v}']['ravdess/telephone']:.3f}",
                     f"{c[f'fold0_{v}_ms_batched']:.3f}", f"{c[f'fold0_{v}_bytes'] / 1e3:.0f} kB"] for v in ("fp32", "int8")]
            parts.append("### INT8 (dynamic weight quantisation), fold 0 model on its held-out speakers, clips\n\n" + table(
                rows, ["weights", "UA RAVDESS clean", "UA EMOVO clean", "UA RAVDESS telephone", "ms / window, batch 32", "size"]))
    text = "\n\n".join(parts)
    card = HERE / "MODEL_CARD.md"
    doc = card.read_text()
    a, b = doc.index(START) + len(START), doc.index(END)
    card.write_text(doc[:a] + "\n\n" + text + "\n\n" + doc[b:])
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
