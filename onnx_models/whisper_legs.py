"""Does per-leg normalisation cancel a sustained emotion? The causal probe, trained as in `whisper_probe`, scored
on test legs that are not emotion-balanced.

    nice -n 15 python -m onnx_models.whisper_legs --cache /work/feat/whisper_base_layers --view L1-5 --out onnx_models/reports/whisper_legs_l1-5.json

Test-leg scenarios (each speaker and channel; windows of a clip stay in time order, clips in a random order):
- ``balanced``: all the speaker's clips in one leg (what `whisper_probe` reports);
- ``sustained``: one leg per emotion, holding only that emotion's clips: a caller who stays angry (or calm) from
  the first word; the worst case for a normaliser that centres on the leg's own mean;
- ``neutral_first``: the speaker's neutral clips, then one emotion's clips: a call that opens calmly and turns;
  the opening windows are not scored (the neutral class is scored on its own ``sustained`` leg).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .labels import EMOTIONS
from .scoring import derived_sentiment, score
from .whisper_legnorm import DEFAULT_PRIOR_WINDOWS, GlobalStats, causal_zscore, running_zscore
from .whisper_probe import VIEWS, Windows, fit_probe, load_windows, tasks

SCENARIOS = ("balanced", "sustained", "neutral_first")


def scenario_legs(w: Windows, rows: np.ndarray, scenario: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows of the leg in arrival order, which of them are scored) for every test leg of a scenario."""
    rows = rows[np.argsort(w.order[rows], kind="stable")]
    legs = []
    for leg in np.unique(w.leg[rows]):
        mine = rows[w.leg[rows] == leg]
        emotion = np.array([w.clips[c].emotion for c in w.clip[mine]])
        if scenario == "balanced":
            legs.append((mine, np.ones(len(mine), bool)))
            continue
        for e in np.unique(emotion):
            if scenario == "sustained" or e == "neutral":
                legs.append((mine[emotion == e], np.ones(int((emotion == e).sum()), bool)))
            else:
                opening = mine[emotion == "neutral"]
                legs.append((np.concatenate([opening, mine[emotion == e]]),
                             np.concatenate([np.zeros(len(opening), bool), np.ones(int((emotion == e).sum()), bool)])))
    return legs


def run(w: Windows, view: str, prior_windows: float, **variant) -> dict:
    """``variant``: `running_zscore`'s ``freeze_after`` / ``center``, for training and test legs alike."""
    x = w.feats[:, VIEWS[view]].reshape(len(w.feats), -1).astype(np.float32)
    out: dict = {}
    for name, train, test, label_sets in tasks(w.clips):
        train_rows = np.flatnonzero(np.isin(w.clip, list(train)))
        prior = GlobalStats.of(x[train_rows])
        xn = causal_zscore(x[train_rows], w.leg[train_rows], w.order[train_rows], prior, prior_windows, **variant)
        corpora = np.array([w.clips[c].corpus for c in w.clip[train_rows]])
        y = np.array([w.clips[c].label for c in w.clip[train_rows]])
        scaler, lr = fit_probe(xn, y, corpora)
        test_rows = np.flatnonzero(np.isin(w.clip, list(test)))
        for scenario in SCENARIOS:
            probs, clip_keys = [], []
            for leg_rows, scored in scenario_legs(w, test_rows, scenario):
                z = running_zscore(x[leg_rows], prior, prior_windows, **variant)
                p = np.zeros((len(leg_rows), len(EMOTIONS)), np.float32)
                p[:, lr.classes_] = lr.predict_proba(scaler.transform(z))
                probs.append(p[scored])
                clip_keys += [(int(c), str(k)) for c, k in zip(w.clip[leg_rows][scored], w.channel[leg_rows][scored])]
            probs_all = np.concatenate(probs)
            keys = np.array([f"{c}|{k}" for c, k in clip_keys])
            for kind in ("clean", "telephone"):
                for corpus, labels in label_sets.items():
                    ids = sorted({c for c, k in clip_keys if k == kind and w.clips[c].corpus == corpus})
                    emo = [probs_all[keys == f"{c}|{kind}"] for c in ids]
                    r = score([w.clips[i] for i in ids], emo, [derived_sentiment(e) for e in emo], labels)
                    out.setdefault(scenario, {}).setdefault(name, {})[f"{corpus}/{kind}"] = {
                        "clip_ua": r["clip"]["emotion"]["ua"], "window_ua": r["window"]["emotion"]["ua"],
                        "clip_f1": r["clip"]["emotion"]["macro_f1"], "per_class_recall": r["clip"]["per_class_recall"]}
        print(name, {s: {k: v["clip_ua"] for k, v in out[s][name].items() if k.endswith("clean")} for s in SCENARIOS}, flush=True)
    return out


def summary(out: dict) -> dict:
    res = {}
    for scenario, by_task in out.items():
        folds = [t for t in by_task if t.startswith("fold")]
        loco = [t for t in by_task if "->" in t]
        for kind in ("clean", "telephone"):
            for corpus in ("ravdess", "emovo"):
                res[f"{scenario} {corpus} {kind}"] = round(float(np.mean([by_task[t][f"{corpus}/{kind}"]["clip_ua"] for t in folds])), 4)
            res[f"{scenario} loco mean {kind}"] = round(float(np.mean([by_task[t][f"{t.split('->')[1]}/{kind}"]["clip_ua"] for t in loco])), 4)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--view", default="L1-5", choices=list(VIEWS))
    p.add_argument("--prior-windows", type=float, default=DEFAULT_PRIOR_WINDOWS)
    p.add_argument("--freeze-after", type=int, default=None, help="statistics from the leg's first N windows only")
    p.add_argument("--no-center", action="store_true", help="divide by the leg's deviation, subtract the global mean")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    variant = {"freeze_after": args.freeze_after, "center": not args.no_center}
    out = run(load_windows(args.cache), args.view, args.prior_windows, **variant)
    report = {"view": args.view, "prior_windows": args.prior_windows, **variant, "summary": summary(out), "tasks": out}
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
