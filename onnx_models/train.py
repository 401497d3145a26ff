"""Train a speech-emotion model (emotion + sentiment heads) on speed-perturbed, telephone-augmented 2 s crops.

    python -m onnx_models.train --out artifacts/model.pt          # the shipped model: cnn2d, 80 epochs, seeds 0 1 2 side by side
    python -m onnx_models.train --seeds 0 --holdout 0 --speed 0 ...   # an ablation, scored on fold 0's speakers

Several seeds train one network each (in parallel processes, one thread each); the checkpoint holds them all and
`export` turns them into one ensemble graph. Seeded and deterministic on CPU for a given thread count.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .augment import change_speed, random_channel
from .data import CORPORA, DEFAULT_DATA, WINDOW, Clip, load_all, load_extra_training, speaker_folds, speech_crop
from .labels import EMOTIONS, NO_SENTIMENT, SENTIMENTS
from .models import ARCHITECTURES
from .torch_predict import FOLD_LABEL_SETS, evaluate_model, quick_ua

BATCH = 64
LR = 2e-3
WEIGHT_DECAY = 1e-3
LABEL_SMOOTHING = 0.1
SENTIMENT_LOSS_WEIGHT = 0.5


@dataclass(frozen=True)
class Recipe:
    """The training choices that ablations vary. The field defaults are the plain recipe (each extra off but
    SpecAugment); ``SHIPPED_RECIPE`` is the shipped model's, and the command lines default to it."""
    specaug_masks: int = 2      # SpecAugment stripes per axis and window (0: off)
    mixup: float = 0.0          # feature-domain mixup, Beta(a, a) weights (0: off)
    speed: float = 0.0          # speed perturbation: factors uniform in [1 - speed, 1 + speed] (0: off)

    def tag(self) -> str:
        """What differs from the plain recipe, e.g. '_speed0.1' ('' for none): the suffix of result files."""
        return "".join(f"_{f.name.replace('_', '')}{getattr(self, f.name):g}" for f in fields(self)
                       if getattr(self, f.name) != f.default)


SHIPPED_RECIPE = Recipe(speed=0.1)


def add_recipe_args(p: argparse.ArgumentParser) -> None:
    """Recipe options; their defaults are the shipped recipe's."""
    p.add_argument("--specaug-masks", type=int, default=SHIPPED_RECIPE.specaug_masks, help="SpecAugment stripes per axis and window (0: off)")
    p.add_argument("--mixup", type=float, default=SHIPPED_RECIPE.mixup, help="feature-domain mixup, Beta(a, a) weights (0: off)")
    p.add_argument("--speed", type=float, default=SHIPPED_RECIPE.speed, help="speed perturbation, factors uniform in [1 - s, 1 + s] (0: off)")


def recipe_from(args: argparse.Namespace) -> Recipe:
    return Recipe(**{f.name: getattr(args, f.name) for f in fields(Recipe)})


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def select(clips: list[Clip], corpora: tuple[str, ...], exclude_speakers: set[str] = frozenset()) -> list[Clip]:
    return [c for c in clips if c.corpus in corpora and c.speaker not in exclude_speakers]


def training_clips(clips: list[Clip], extra: list[Clip], held: set[str], excluded: set[str]) -> list[Clip]:
    """RAVDESS and EMOVO but the held-out speakers, plus the extra corpora; corpora named in ``excluded`` left
    out whole (a leave-one-corpus-out model). Naming a corpus that is not there is an error, not a no-op."""
    unknown = excluded - {c.corpus for c in clips + extra}
    if unknown:
        raise ValueError(f"{sorted(unknown)} is not a corpus being trained on (have {sorted({c.corpus for c in clips + extra})})")
    kept = tuple(c for c in CORPORA if c not in excluded)
    return select(clips, kept, held) + [c for c in extra if c.corpus not in excluded]


def balanced_weights(labels: list[int], n_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights (mean 1 over the classes present); labels < 0 are ignored."""
    counts = np.bincount([y for y in labels if y >= 0], minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / (counts > 0).sum(), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def epoch_order(clips: list[Clip], rng: np.random.Generator) -> np.ndarray:
    """Each corpus contributes equally per epoch (EMOVO is smaller than RAVDESS)."""
    by_corpus: dict[str, list[int]] = {}
    for i, c in enumerate(clips):
        by_corpus.setdefault(c.corpus, []).append(i)
    per = max(len(v) for v in by_corpus.values())
    idx = np.concatenate([rng.choice(v, per, replace=len(v) < per) for v in by_corpus.values()])
    rng.shuffle(idx)
    return idx


def training_window(clip: Clip, rng: np.random.Generator, recipe: Recipe, babble: list[np.ndarray]) -> np.ndarray:
    """One 2 s training input: a speech crop, at a random speed if the recipe says so, through a random channel."""
    if recipe.speed > 0:
        length = round(WINDOW * rng.uniform(1 - recipe.speed, 1 + recipe.speed))
        crop = change_speed(speech_crop(clip.audio, rng, length), WINDOW)
    else:
        crop = speech_crop(clip.audio, rng)
    return random_channel(crop, rng, babble)


# A batch's loss with distillation: (emotion logits, sentiment logits, the batch's indices into the clips, the
# hard-label loss) -> the loss to minimise (`distill.kd_loss`).
BatchLoss = Callable[[torch.Tensor, torch.Tensor, np.ndarray, torch.Tensor], torch.Tensor]


def train(clips: list[Clip], arch: str = "cnn2d", epochs: int = 80, seed: int = 0, log=print, val: list[Clip] | None = None,
          progress: bool = True, recipe: Recipe = SHIPPED_RECIPE, distill: BatchLoss | None = None) -> tuple[nn.Module, dict]:
    """With ``recipe.mixup`` > 0 each batch's normalised log-mels are mixed with a shuffled copy of themselves
    (weight ~ Beta(mixup, mixup)) and the losses of both label sets count in the same proportion. ``distill``
    replaces each batch's hard-label loss by its own mix of it and a teacher's soft labels; it consumes no random
    numbers, so a run with it sees exactly the crops and augmentations of the same run without it."""
    if distill is not None and recipe.mixup > 0:
        raise ValueError("distillation with mixup is not supported: a mixed input has no single teacher target")
    set_seed(seed)
    rng = np.random.default_rng(seed)
    mixup = recipe.mixup
    model = ARCHITECTURES[arch]()
    model.augment.masks = recipe.specaug_masks
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps = epochs * int(np.ceil(len(epoch_order(clips, np.random.default_rng(0))) / BATCH))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.15)
    emo_loss = nn.CrossEntropyLoss(weight=balanced_weights([c.label for c in clips], len(EMOTIONS)), label_smoothing=LABEL_SMOOTHING)
    # Four acted emotions map to "negative", so negative clips outnumber the rest about 3:1: without weights the
    # sentiment head learns that prior and reads calm speakers as negative.
    sent_loss = nn.CrossEntropyLoss(weight=balanced_weights([c.sentiment for c in clips], len(SENTIMENTS)),
                                    ignore_index=NO_SENTIMENT, label_smoothing=LABEL_SMOOTHING)
    babble = [c.audio for c in clips[:: max(1, len(clips) // 200)]]

    def joint_loss(e: torch.Tensor, s: torch.Tensor, y: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return emo_loss(e, y) + SENTIMENT_LOSS_WEIGHT * sent_loss(s, ys)

    history = {"epoch": [], "loss": [], "val_ua": []}
    for epoch in range(epochs):
        model.train()
        order = epoch_order(clips, rng)
        total, n = 0.0, 0
        bar = tqdm(range(0, len(order), BATCH), desc=f"epoch {epoch + 1}/{epochs}", leave=False, mininterval=2, disable=not progress)
        for b in bar:
            idx = order[b:b + BATCH]
            batch = [clips[i] for i in idx]
            x = torch.from_numpy(np.stack([training_window(c, rng, recipe, babble) for c in batch]))
            y = torch.tensor([c.label for c in batch])
            ys = torch.tensor([c.sentiment for c in batch])
            if mixup > 0:
                lam, perm = float(rng.beta(mixup, mixup)), torch.from_numpy(rng.permutation(len(batch)))
                features = model.frontend(x)
                e, s = model.classify(lam * features + (1 - lam) * features[perm])
                loss = lam * joint_loss(e, s, y, ys) + (1 - lam) * joint_loss(e, s, y[perm], ys[perm])
            else:
                e, s = model(x)
                loss = joint_loss(e, s, y, ys)
                if distill is not None:
                    loss = distill(e, s, idx, loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(batch)
            n += len(batch)
        history["epoch"].append(epoch + 1)
        history["loss"].append(total / n)
        if val:
            history["val_ua"].append(quick_ua(model, val))
        log(f"epoch {epoch + 1}: loss {total / n:.3f}" + (f"  held-out UA {history['val_ua'][-1]:.3f}" if val else ""))
    model.eval()
    return model, history


def held_out_scores(model: nn.Module, test: list[Clip]) -> dict[str, float]:
    """Clip-level emotion UA on the held-out speakers, per corpus (RAVDESS 8 classes, EMOVO 7), clean and telephone:
    the quick single-fold check used for ablations; `evaluate` runs the full protocol."""
    r = evaluate_model(model, test, FOLD_LABEL_SETS)
    return {k: v["clip"]["emotion"]["ua"] for k, v in r.items()}


def _train_member(seed: int) -> dict:
    """One seed's network; in a pool worker (fork: the clips are inherited) or in this process."""
    clips, arch, epochs, recipe, threads, progress, distill = _MEMBER_CONTEXT
    torch.set_num_threads(threads)
    t0 = time.time()
    model, history = train(clips, arch, epochs, seed, log=lambda m: print(f"[seed {seed}] {m}", flush=True),
                           progress=progress, recipe=recipe, distill=distill)
    return {"seed": seed, "state": model.state_dict(), "history": history, "train_seconds": round(time.time() - t0, 1)}


_MEMBER_CONTEXT: tuple = ()


def train_members(clips: list[Clip], arch: str, epochs: int, seeds: list[int], jobs: int, recipe: Recipe = SHIPPED_RECIPE,
                  distill: BatchLoss | None = None) -> list[dict]:
    """One network per seed, ``jobs`` side by side (one process and one thread each; 1: here, with this process's
    threads); ``distill``: as for `train`."""
    global _MEMBER_CONTEXT
    if jobs <= 1:
        _MEMBER_CONTEXT = (clips, arch, epochs, recipe, torch.get_num_threads(), True, distill)
        return [_train_member(s) for s in seeds]
    import multiprocessing
    _MEMBER_CONTEXT = (clips, arch, epochs, recipe, 1, False, distill)   # per-epoch lines instead of interleaved bars
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        return pool.map(_train_member, seeds, chunksize=1)


def load_members(ckpt: dict) -> nn.Module:
    """The network(s) of a checkpoint: one network, or a SeedEnsemble of them."""
    from .models import SeedEnsemble
    states = [m["state"] for m in ckpt["members"]] if "members" in ckpt else [ckpt["state"]]
    nets = []
    for state in states:
        net = ARCHITECTURES[ckpt["arch"]]()
        net.load_state_dict(state)
        nets.append(net.eval())
    return nets[0] if len(nets) == 1 else SeedEnsemble(nets).eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), default="cnn2d")
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one network per seed; several make an ensemble")
    p.add_argument("--jobs", type=int, default=2, help="networks trained side by side, one process and one thread each")
    p.add_argument("--threads", type=int, default=2, help="torch threads when --jobs is 1")
    p.add_argument("--holdout", type=int, default=None, help="hold out the speakers of this fold (0-2) and score them after training")
    add_recipe_args(p)
    p.add_argument("--extra-train", type=Path, nargs="*", default=[],
                   help="further corpus folders (labels.csv, mono audio) trained on as well, e.g. EmoDB laid out by prepare_emodb")
    p.add_argument("--exclude-corpus", nargs="*", default=[], metavar="NAME",
                   help="leave these corpora (by folder name, e.g. emovo) out of training: a leave-one-corpus-out model")
    p.add_argument("--out", type=Path, default=Path("artifacts/model.pt"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clips = load_all(args.data)
    held = speaker_folds(clips)[args.holdout] if args.holdout is not None else set()
    extra = load_extra_training(args.extra_train)
    excluded = set(args.exclude_corpus)
    try:
        train_clips = training_clips(clips, extra, held, excluded)
    except ValueError as exc:
        raise SystemExit(f"--exclude-corpus: {exc}") from None
    t0 = time.time()
    recipe = recipe_from(args)
    members = train_members(train_clips, args.arch, args.epochs, args.seeds, min(args.jobs, len(args.seeds)), recipe)
    seconds = round(time.time() - t0, 1)
    ckpt = {"arch": args.arch, "members": members, "held_out": sorted(held), "seeds": args.seeds, "epochs": args.epochs,
            **asdict(recipe), "extra_train": sorted({c.corpus for c in extra} - excluded),
            "corpora": sorted({c.corpus for c in train_clips}), "train_seconds": seconds}
    ckpt["held_out_scores"] = held_out_scores(load_members(ckpt), [c for c in clips if c.speaker in held]) if held else {}
    scores = ckpt["held_out_scores"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, args.out)
    print(json.dumps({"out": str(args.out), "train_seconds": seconds, "held_out_clip_ua": scores}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
