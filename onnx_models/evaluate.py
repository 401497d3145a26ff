"""Honest evaluation: speakers never seen in training, across corpora, clean and telephone-band, on the 2 s
windows the workers score and on whole clips. Unweighted (balanced) accuracy and macro-F1.

    python -m onnx_models.evaluate --arch cnn2d tcnn crnn --epochs 80 --out onnx_models/reports   # every protocol, ~40 min per arch on one core

Protocols:
- speaker-independent: 3 folds; each holds out 1/3 of the speakers of BOTH corpora (EMOVO: one woman and
  one man; RAVDESS: 8 actors, both sexes); train on the rest of both corpora; RAVDESS scored on 8 classes,
  EMOVO on its 7; mean and standard deviation over folds.
- cross-corpus: train on one corpus only, test on every speaker of the other, on the 6 shared classes.
- telephone: the same test clips through a 300-3400 Hz band-pass and G.711 (u-law for even clips, A-law for odd).
- unseen corpora (``--unseen FOLDER``, e.g. EmoDB laid out by `prepare_emodb`): no training sees them; the fold
  models (trained on both corpora) and each cross-corpus model are scored on them, on the emotions they share.
- more training data (``--extra-train FOLDER``): a further corpus added to every task's training set, never
  tested on; the cross-corpus tasks then read e.g. "ravdess+emodb -> emovo" (leave one corpus out).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from .data import DEFAULT_DATA, Clip, load_all, load_extra_training, load_folder, speaker_folds
from .labels import SHARED_EMOTIONS
from .scoring import Predictions, score_channels, shared_labels
from .torch_predict import FOLD_LABEL_SETS, predict_channels
from .train import SHIPPED_RECIPE, Recipe, add_recipe_args, recipe_from, select, train

def mean_predictions(preds: list[Predictions]) -> Predictions:
    """A seed ensemble: the mean of its members' window probabilities (what the exported ensemble computes)."""
    return {kind: tuple([np.mean([p[kind][head][i] for p in preds], axis=0) for i in range(len(preds[0][kind][head]))]
                        for head in (0, 1)) for kind in preds[0]}


Task = tuple   # ("fold", k): hold out fold k's speakers; ("cross", src, dst): train on one corpus, test on the other


def task_data(clips: list[Clip], task: Task) -> tuple[list[Clip], list[Clip], dict[str, tuple[str, ...]]]:
    """Training clips, test clips and the label sets to score them on."""
    if task[0] == "fold":
        held = speaker_folds(clips)[task[1]]
        return select(clips, ("ravdess", "emovo"), held), [c for c in clips if c.speaker in held], FOLD_LABEL_SETS
    _, src, dst = task
    return select(clips, (src,)), [c for c in clips if c.corpus == dst], {dst: SHARED_EMOTIONS}


class _Protocol(NamedTuple):
    """What every training of a protocol shares; a module global, so forked pool workers inherit the clips."""
    clips: list[Clip]
    arch: str
    epochs: int
    recipe: Recipe
    threads: int
    progress: bool                  # False in pool workers: their bars would interleave
    checkpoint_dir: Path | None     # the first seed's fold-0 model is kept there for the INT8 check
    first_seed: int
    unseen: list[Clip]              # corpora no training sees: every trained model is scored on them too
    extra: list[Clip]               # clips of further corpora added to every task's training set (never tested)


_PROTOCOL: _Protocol | None = None


def _run_task(job: tuple[Task, int]) -> tuple[Task, int, Predictions, dict, float, Predictions | None]:
    """One training (one task, one seed) and its predictions on the task's test clips. Runs in a worker process
    with one torch thread, so the trainings of a protocol can run side by side."""
    task, seed = job
    ctx = _PROTOCOL
    torch.set_num_threads(ctx.threads)
    t0 = time.time()
    train_clips, test, _ = task_data(ctx.clips, task)
    model, hist = train(train_clips + ctx.extra, ctx.arch, ctx.epochs, seed, log=lambda *_: None, progress=ctx.progress, recipe=ctx.recipe)
    preds = predict_channels(model, test)
    unseen = predict_channels(model, ctx.unseen) if ctx.unseen else None
    if task == ("fold", 0) and ctx.checkpoint_dir is not None and seed == ctx.first_seed:   # scored by the INT8 check on speakers it never saw
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"arch": ctx.arch, "state": model.state_dict(), "held_out": sorted(speaker_folds(ctx.clips)[0]), "epochs": ctx.epochs,
                    "seed": seed}, ctx.checkpoint_dir / f"fold0_{ctx.arch}.pt")
    return task, seed, preds, hist, round(time.time() - t0, 1), unseen


def run_protocols(clips: list[Clip], arch: str, epochs: int, seeds: list[int], log=print, checkpoint_dir: Path | None = None,
                  jobs: int = 1, recipe: Recipe = SHIPPED_RECIPE, unseen: list[Clip] | None = None, extra: list[Clip] | None = None) -> dict:
    """Every protocol for one architecture: 3 speaker folds and both cross-corpus directions, one training per
    seed, ``jobs`` trainings at a time (each in its own process with one thread; jobs=1 runs them here with the
    caller's thread count). With several seeds the results are those of their ensemble (mean probabilities), and
    ``members`` holds the headline numbers of each seed alone and of the ensembles of its first k seeds.
    ``unseen``: clips of corpora that no task trains on; each task's models are also scored on them (under the
    task's ``unseen`` key), on the emotions each such corpus shares with the model."""
    global _PROTOCOL
    _PROTOCOL = _Protocol(clips, arch, epochs, recipe, threads=1 if jobs > 1 else torch.get_num_threads(), progress=jobs <= 1,
                          checkpoint_dir=checkpoint_dir, first_seed=seeds[0], unseen=unseen or [], extra=extra or [])
    tasks = [("fold", k) for k in range(len(speaker_folds(clips)))] + [("cross", "ravdess", "emovo"), ("cross", "emovo", "ravdess")]
    jobs_list = [(t, s) for s in seeds for t in tasks]
    done = []
    if jobs > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(jobs) as pool:   # fork: the workers inherit the loaded clips
            for d in pool.imap_unordered(_run_task, jobs_list, chunksize=1):
                done.append(d)
                log(f"[{arch}] {' '.join(map(str, d[0]))}, seed {d[1]}: trained and scored in {d[4]:.0f} s ({len(done)}/{len(jobs_list)})")
    else:
        done = [_run_task(j) for j in jobs_list]
    by_job = {(task, seed): (preds, hist, secs, unseen_preds) for task, seed, preds, hist, secs, unseen_preds in done}
    extra_corpora = sorted({c.corpus for c in extra or []})     # named in the cross-corpus keys: "ravdess+emodb->emovo"
    unseen_label_sets = {name: shared_labels([c for c in unseen if c.corpus == name]) for name in sorted({c.corpus for c in unseen or []})}

    def results_for(members: list[int]) -> dict:
        results: dict = {"arch": arch, "epochs": epochs, "seed": members[0] if len(members) == 1 else members, **asdict(recipe),
                         "extra_train": extra_corpora,
                         "folds": [], "cross": {}, "histories": []}
        for task in tasks:
            _, test, label_sets = task_data(clips, task)
            r = score_channels(test, mean_predictions([by_job[(task, s)][0] for s in members]), label_sets)
            r["train_seconds"] = [by_job[(task, s)][2] for s in members]
            if unseen:
                r["unseen"] = score_channels(unseen, mean_predictions([by_job[(task, s)][3] for s in members]), unseen_label_sets)
            if task[0] == "fold":
                r["held_out"] = sorted(speaker_folds(clips)[task[1]])
                results["folds"].append(r)
                results["histories"].append(by_job[(task, members[0])][1])
            else:
                results["cross"][f"{'+'.join([task[1], *extra_corpora])}->{task[2]}"] = r
        return results

    results = results_for(seeds)
    if len(seeds) > 1:
        results["members"] = {f"seed {s}": headline(summarise(results_for([s]))) for s in seeds}
        results["members"].update({f"first {k} seeds": headline(summarise(results_for(seeds[:k]))) for k in range(2, len(seeds))})
    for k, f in enumerate(results["folds"]):
        log(f"[{arch}] fold {k}: RAVDESS UA {f['ravdess/clean']['clip']['emotion']['ua']:.3f} (phone {f['ravdess/telephone']['clip']['emotion']['ua']:.3f}), "
            f"EMOVO UA {f['emovo/clean']['clip']['emotion']['ua']:.3f} (phone {f['emovo/telephone']['clip']['emotion']['ua']:.3f})")
    for pair, r in results["cross"].items():
        log(f"[{arch}] {pair}: UA {r[pair.split('->')[1] + '/clean']['clip']['emotion']['ua']:.3f}")
    for name in unseen_label_sets:
        log(f"[{arch}] unseen {name}: UA " + ", ".join(f"{label} {r['unseen'][name + '/clean']['clip']['emotion']['ua']:.3f}" for label, r in
                                                   [*((f"fold {k}", f) for k, f in enumerate(results["folds"])), *results["cross"].items()]))
    return results


def headline(summary: dict) -> dict:
    """The numbers a model is judged by (clean clips; mean over folds for the speaker folds)."""
    return {"ravdess_ua": summary["ravdess/clean/clip"]["emotion_ua"]["mean"], "emovo_ua": summary["emovo/clean/clip"]["emotion_ua"]["mean"],
            "ravdess_telephone_ua": summary["ravdess/telephone/clip"]["emotion_ua"]["mean"],
            "emovo_telephone_ua": summary["emovo/telephone/clip"]["emotion_ua"]["mean"],
            "ravdess_sentiment_ua": summary["ravdess/clean/clip"]["sentiment_head_ua"]["mean"],
            "emovo_sentiment_ua": summary["emovo/clean/clip"]["sentiment_head_ua"]["mean"],
            **{f"cross {k.split('/')[0].removeprefix('cross ')}": v["emotion_ua"] for k, v in summary.items()
               if k.startswith("cross") and k.endswith("/clean/clip")},
            **{k.split("/")[0]: v["emotion_ua"]["mean"] if isinstance(v["emotion_ua"], dict) else v["emotion_ua"]
               for k, v in summary.items() if k.startswith("unseen") and k.endswith("/clean/clip")}}


def fold_stat(results: dict, path: tuple) -> dict:
    """Mean and standard deviation over folds of the number at ``path`` in each fold's results."""
    vals = []
    for f in results["folds"]:
        v = f
        for key in path:
            v = v[key]
        vals.append(v)
    return {"mean": round(float(np.mean(vals)), 4), "std": round(float(np.std(vals)), 4)}


def _single_model_summary(level_result: dict) -> dict:
    """The summary numbers of one model's score at one level (cross-corpus and unseen-corpus tasks: no folds)."""
    return {"emotion_ua": level_result["emotion"]["ua"], "emotion_f1": level_result["emotion"]["macro_f1"],
            "sentiment_head_ua": level_result["sentiment_head"]["ua"]}


def summarise(results: dict) -> dict:
    """Mean and standard deviation over folds of the headline numbers."""
    def stat(path):
        return fold_stat(results, path)
    out = {}
    for corpus in ("ravdess", "emovo"):
        for kind in ("clean", "telephone"):
            for level in ("window", "clip"):
                base = (f"{corpus}/{kind}", level)
                out[f"{corpus}/{kind}/{level}"] = {
                    "emotion_ua": stat(base + ("emotion", "ua")), "emotion_f1": stat(base + ("emotion", "macro_f1")),
                    "sentiment_head_ua": stat(base + ("sentiment_head", "ua")), "sentiment_head_f1": stat(base + ("sentiment_head", "macro_f1")),
                    "sentiment_derived_ua": stat(base + ("sentiment_derived", "ua")),
                }
    for pair, r in results["cross"].items():
        dst = pair.split("->")[1]
        for kind in ("clean", "telephone"):
            for level in ("window", "clip"):
                out[f"cross {pair}/{kind}/{level}"] = _single_model_summary(r[f"{dst}/{kind}"][level])
    for key in results["folds"][0].get("unseen", {}):         # e.g. "emodb/clean": the fold models, then each corpus's own
        corpus, kind = key.split("/")
        for level in ("window", "clip"):
            base = ("unseen", key, level)
            out[f"unseen {corpus} from both/{kind}/{level}"] = {
                "emotion_ua": stat(base + ("emotion", "ua")), "emotion_f1": stat(base + ("emotion", "macro_f1")),
                "sentiment_head_ua": stat(base + ("sentiment_head", "ua"))}
            for pair, r in results["cross"].items():
                out[f"unseen {corpus} from {pair.split('->')[0]}/{kind}/{level}"] = _single_model_summary(r["unseen"][key][level])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--arch", nargs="+", default=["cnn2d"])
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="several seeds: score their ensemble (and each alone)")
    p.add_argument("--threads", type=int, default=2, help="torch threads when --jobs is 1")
    p.add_argument("--jobs", type=int, default=1, help="trainings side by side, one process and one thread each")
    add_recipe_args(p)
    p.add_argument("--unseen", type=Path, nargs="*", default=[],
                   help="corpus folders (labels.csv, mono audio) that no training sees; every trained model is also scored on them")
    p.add_argument("--extra-train", type=Path, nargs="*", default=[],
                   help="corpus folders added to every training set (fold and cross-corpus tasks); never tested on")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("reports"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clips = load_all(args.data)
    unseen = [c for folder in args.unseen for c in load_folder(folder)]
    extra = load_extra_training(args.extra_train)
    args.out.mkdir(parents=True, exist_ok=True)
    for arch in args.arch:
        t0 = time.time()
        recipe = recipe_from(args)
        results = run_protocols(clips, arch, args.epochs, args.seeds, checkpoint_dir=Path("artifacts") if recipe == SHIPPED_RECIPE and not extra else None,
                                jobs=args.jobs, recipe=recipe, unseen=unseen, extra=extra)
        results["summary"] = summarise(results)
        results["seconds"] = round(time.time() - t0, 1)
        name = (arch if len(args.seeds) == 1 else f"{arch}_x{len(args.seeds)}") + recipe.tag() + "".join(f"_plus_{c}" for c in results["extra_train"])
        (args.out / f"eval_{name}.json").write_text(json.dumps(results, indent=1))
        from .plots import plot_results
        plot_results(results, args.out, name)
        if "members" in results:
            print(json.dumps(results["members"], indent=1))
        print(json.dumps(results["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
