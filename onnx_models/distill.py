"""Distil the frozen Whisper-base probe (the teacher) into the small log-mel network (the student, 0.6.0's
architecture and cost), and measure it against the same recipe without the teacher.

    nice -n 10 python -m onnx_models.distill_targets --cache /work/feat/whisper_base_layers --out /work/feat/distill
    nice -n 10 python -m onnx_models.distill --task fold0 --arm kd --epochs 40 --targets /work/feat/distill --out onnx_models/reports/distill
    nice -n 10 python -m onnx_models.distill --task fold0 --arm plain --epochs 40 --out onnx_models/reports/distill

Both arms train the shipped recipe (`train.SHIPPED_RECIPE`: speech crops, speed ±10 %, random channel, SpecAugment;
EmoDB added to every training set as for 0.6.0) with the same seed, so they see the same crops and augmentations;
``kd`` replaces each batch's loss by ``(1 - alpha) * hard + alpha * T^2 * KL(teacher_T || student_T)`` on both
heads (the sentiment target is the teacher's emotion distribution summed per sentiment). The teacher's targets
are per clip, cross-fitted on the task's training speakers only (`distill_targets`). Each run scores its task's
held-out clips like `evaluate` (clean and telephone, windows and clips) into ``{file_stem(task)}_{arm}_e{epochs}_s{seed}.json``.

The shipping student (task ``all``: every speaker; targets cross-fitted over all speakers), a checkpoint in
`train`'s format for `export` and `quantize`:

    nice -n 10 python -m onnx_models.distill --task all --arm kd --epochs 80 --seeds 0 1 2 --jobs 2 --targets /work/feat/distill --ckpt artifacts/model_kd.pt
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import DEFAULT_DATA, Clip, load_corpus
from .distill_targets import EXTRA_CORPUS, TASKS, file_stem, sentiment_targets
from .evaluate import task_data
from .labels import EMOTIONS
from .torch_predict import evaluate_model
from .train import SENTIMENT_LOSS_WEIGHT, SHIPPED_RECIPE, BatchLoss, train, train_members

KD_ALPHA = 0.5             # weight of the teacher term, fixed a priori (not tuned on any test speaker)
ARMS = ("plain", "kd")


def load_keyed(data: Path) -> tuple[list[Clip], list[Clip], dict[int, tuple[str, int]]]:
    """RAVDESS+EMOVO clips (as `load_all`), EmoDB's clips of a known emotion (as `load_extra_training`), and each
    clip's (corpus, row in its corpus) by ``id(clip)``: the key of the teacher's targets."""
    keys: dict[int, tuple[str, int]] = {}
    main: list[Clip] = []
    extra: list[Clip] = []
    for name in ("ravdess", "emovo", EXTRA_CORPUS):
        for i, c in enumerate(load_corpus(name, data)):
            keys[id(c)] = (name, i)
            if name != EXTRA_CORPUS:
                main.append(c)
            elif c.emotion in EMOTIONS:
                extra.append(c)
    return main, extra, keys


def aligned_targets(clips: list[Clip], keys: dict[int, tuple[str, int]], targets: dict[str, np.ndarray]) -> np.ndarray:
    """The teacher's emotion distribution of each training clip, in ``clips``' order. A training clip without a
    target, or a target whose label disagrees with the clip's, is an error (the targets belong to another task
    or another data layout)."""
    row = {(str(c), int(i)): k for k, (c, i) in enumerate(zip(targets["corpus"], targets["index"]))}
    if len(row) != len(clips):
        raise ValueError(f"the targets hold {len(row)} clips, the task trains on {len(clips)}")
    out = np.empty((len(clips), len(EMOTIONS)), np.float32)
    for j, c in enumerate(clips):
        k = row.get(keys[id(c)])
        if k is None or int(targets["label"][k]) != c.label:
            raise ValueError(f"no matching teacher target for {keys[id(c)]} ({c.speaker}, {c.emotion})")
        out[j] = targets["emotion"][k]
    return out


def kd_loss(emotion_targets: np.ndarray, clips: list[Clip], alpha: float, temperature: float) -> BatchLoss:
    """The batch loss mixing the hard-label loss with KL to the teacher's tempered distributions; the sentiment
    term counts only on clips that have a sentiment (as the hard loss), with the hard loss's weight."""
    pe = torch.from_numpy(emotion_targets)
    ps = torch.from_numpy(sentiment_targets(emotion_targets))
    has_sent = torch.tensor([c.sentiment >= 0 for c in clips])

    def loss(e: torch.Tensor, s: torch.Tensor, idx: np.ndarray, hard: torch.Tensor) -> torch.Tensor:
        i = torch.from_numpy(np.asarray(idx))
        kl_e = F.kl_div(F.log_softmax(e / temperature, 1), pe[i], reduction="batchmean")
        mask = has_sent[i]
        kl_s = F.kl_div(F.log_softmax(s[mask] / temperature, 1), ps[i][mask], reduction="batchmean") if mask.any() else e.sum() * 0
        return (1 - alpha) * hard + alpha * temperature ** 2 * (kl_e + SENTIMENT_LOSS_WEIGHT * kl_s)
    return loss


def ship(clips: list[Clip], distill: BatchLoss | None, args: argparse.Namespace) -> dict:
    """Every speaker, one network per seed: a checkpoint as `train` writes it (no held-out speakers)."""
    t0 = time.time()
    members = train_members(clips, "cnn2d", args.epochs, args.seeds, min(args.jobs, len(args.seeds)), SHIPPED_RECIPE, distill=distill)
    ckpt = {"arch": "cnn2d", "members": members, "held_out": [], "seeds": args.seeds, "epochs": args.epochs,
            **asdict(SHIPPED_RECIPE), "extra_train": [EXTRA_CORPUS], "corpora": sorted({c.corpus for c in clips}),
            "train_seconds": round(time.time() - t0, 1), "held_out_scores": {},
            "distillation": {"alpha": args.alpha, "teacher": "whisper_probe L1-5 / none, cross-fitted"} if distill else None}
    args.ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, args.ckpt)
    return {"out": str(args.ckpt), "train_seconds": ckpt["train_seconds"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--task", choices=list(TASKS), required=True, help="'all': train the shipping student (needs --ckpt)")
    p.add_argument("--arm", choices=ARMS, required=True)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="--task all: one network per seed")
    p.add_argument("--jobs", type=int, default=2, help="--task all: networks trained side by side")
    p.add_argument("--alpha", type=float, default=KD_ALPHA)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--targets", type=Path, default=None, help="distill_targets folder (needed for --arm kd)")
    p.add_argument("--out", type=Path, default=None, help="folder for the result JSON (evaluation tasks)")
    p.add_argument("--ckpt", type=Path, default=None, help="--task all: the checkpoint to write")
    args = p.parse_args(argv)
    if args.arm == "kd" and args.targets is None:
        raise SystemExit("--arm kd needs --targets (a distill_targets folder)")
    if (args.task == "all") != (args.ckpt is not None) or (args.task != "all" and args.out is None):
        raise SystemExit("--task all writes a checkpoint (--ckpt); the other tasks write a result JSON (--out)")
    torch.set_num_threads(args.threads)
    clips, extra, keys = load_keyed(args.data)
    task = TASKS[args.task]
    if task[0] == "all":
        train_clips, test, label_sets = clips + extra, [], {}
    else:
        train_clips, test, label_sets = task_data(clips, task)
        train_clips = train_clips + extra
    distill, temperature = None, None
    if args.arm == "kd":
        z = np.load(args.targets / f"{file_stem(args.task)}.npz")
        temperature = float(z["temperature"])
        distill = kd_loss(aligned_targets(train_clips, keys, dict(z)), train_clips, args.alpha, temperature)
    if task[0] == "all":
        print(json.dumps(ship(train_clips, distill, args)), flush=True)
        return 0
    t0 = time.time()
    model, history = train(train_clips, "cnn2d", args.epochs, args.seed, log=lambda m: print(m, flush=True), progress=False,
                           recipe=SHIPPED_RECIPE, distill=distill)
    seconds = round(time.time() - t0, 1)
    scores = evaluate_model(model, test, label_sets)
    result = {"task": args.task, "arm": args.arm, "epochs": args.epochs, "seed": args.seed, "recipe": "SHIPPED_RECIPE (speed 0.1) + emodb",
              "alpha": args.alpha if distill else None, "temperature": temperature, "train_clips": len(train_clips),
              "test_clips": len(test), "train_seconds": seconds, "history": history, "scores": scores}
    args.out.mkdir(parents=True, exist_ok=True)
    dest = args.out / f"{file_stem(args.task)}_{args.arm}_e{args.epochs}_s{args.seed}.json"
    dest.write_text(json.dumps(result, indent=1))
    print(json.dumps({"out": str(dest), "train_seconds": seconds,
                      "clip_ua": {k: v["clip"]["emotion"]["ua"] for k, v in scores.items()}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
