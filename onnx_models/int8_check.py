"""What INT8 costs and what it changes: CPU time per 2 s window of ONNX files (process CPU time, one intra-op thread,
the workers' batch), held-out accuracy of an fp32 fold model against its INT8 copy, and how far an INT8 file's
probabilities move from its fp32 source.

    python -m onnx_models.int8_check cost onnx_models/emotion.onnx /tmp/int8/emotion.onnx
    python -m onnx_models.int8_check accuracy /work/models/fold0 /tmp/fold0_int8          # fold 0's held-out speakers
    python -m onnx_models.int8_check fidelity /tmp/fp32 onnx_models                        # every clip, telephone band
    python -m onnx_models.int8_check cut /tmp/fp32/emotion.onnx /tmp/seed0/emotion.onnx --member 0   # one seed network

CPU time, not wall time: the figure must hold on a machine where other processes run. The files are timed in
interleaved rounds and the median round is reported, so a burst of contention hits every file alike.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from workers.inference import EMOTION_MODEL, MAX_BATCH, OnnxClassifier

from .data import DEFAULT_DATA, Clip, load_all, speaker_folds
from .labels import EMOTIONS, EMOVO_EMOTIONS
from .scoring import channel, predict_windows, score_channels

WINDOW_SAMPLES = 16000                     # 2 s at 8 kHz
ROUND_CPU_S = 0.5
ROUNDS = 9
HELD_OUT_FOLD = 0
LABEL_SETS = {"ravdess": tuple(EMOTIONS), "emovo": EMOVO_EMOTIONS}   # as the fold protocol scores them


def cpu_ms_per_window(paths: list[Path], batch: int, rounds: int = ROUNDS) -> dict[str, dict]:
    """Median (and min) process CPU ms per window of each file's joint run (both outputs), in interleaved rounds, and
    how many times cheaper than the first file it is."""
    x = np.random.default_rng(0).normal(0, 0.1, (batch, WINDOW_SAMPLES)).astype(np.float32)
    models = [OnnxClassifier(p, threads=1) for p in paths]
    for m in models:
        for _ in range(5):
            m.session.run(None, {m.input_name: x})
    per: dict[str, list[float]] = {str(p): [] for p in paths}
    for _ in range(rounds):
        for p, m in zip(paths, models):
            n, c0 = 0, time.process_time()
            while time.process_time() - c0 < ROUND_CPU_S:
                m.session.run(None, {m.input_name: x})
                n += batch
            per[str(p)].append((time.process_time() - c0) / n * 1000)
    first = np.array(per[str(paths[0])])
    # the ratio within each round (files timed back to back) is steadier than a ratio of medians under contention
    return {p: {"median_ms": round(float(np.median(v)), 4), "min_ms": round(min(v), 4), "batch": batch,
                "first_over_this_median_of_rounds": round(float(np.median(first / np.array(v))), 3)} for p, v in per.items()}


def joint_probabilities(model_dir: Path):
    """Emotion and sentiment probabilities from emotion.onnx's one run (its second output), as the workers use it."""
    m = OnnxClassifier(model_dir / EMOTION_MODEL, threads=1)
    out = m.metadata.get("sentiment_output")
    if not out:
        raise ValueError(f"{model_dir / EMOTION_MODEL} has no sentiment output (metadata 'sentiment_output')")

    def run(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, s = m.predict_outputs(windows, out)
        return e, s
    return run


def held_out(clips: list[Clip], fold: int = HELD_OUT_FOLD) -> list[Clip]:
    speakers = speaker_folds(clips)[fold]
    return [c for c in clips if c.speaker in speakers]


def accuracy(model_dirs: list[Path], clips: list[Clip]) -> dict:
    """Clip and window UA / macro-F1 of each model folder on ``clips``, RAVDESS on 8 classes, EMOVO on 7, clean and telephone."""
    res = {}
    for d in model_dirs:
        run = joint_probabilities(d)
        preds = {kind: predict_windows(run, channel(clips, kind), batch=MAX_BATCH) for kind in ("clean", "telephone")}
        scored = score_channels(clips, preds, LABEL_SETS)
        res[str(d)] = {k: {lvl: {"emotion": v[lvl]["emotion"], "sentiment_head": v[lvl]["sentiment_head"]} for lvl in ("clip", "window")}
                       for k, v in scored.items()}
    return res


def fidelity(reference: Path, other: Path, clips: list[Clip], kind: str = "telephone") -> dict:
    """Top-1 agreement and absolute probability differences of ``other`` against ``reference``, per window."""
    audios = channel(clips, kind)
    a = predict_windows(joint_probabilities(reference), audios, batch=MAX_BATCH)
    b = predict_windows(joint_probabilities(other), audios, batch=MAX_BATCH)
    out = {"channel": kind, "clips": len(clips)}
    for i, head in enumerate(("emotion", "sentiment")):
        pa, pb = np.concatenate(a[i]), np.concatenate(b[i])
        diff = np.abs(pa - pb)
        ca = np.stack([x.mean(0) for x in a[i]])
        cb = np.stack([x.mean(0) for x in b[i]])
        out[head] = {"windows": len(pa), "top1_agreement_windows": round(float((pa.argmax(1) == pb.argmax(1)).mean()), 4),
                     "top1_agreement_clips": round(float((ca.argmax(1) == cb.argmax(1)).mean()), 4),
                     "max_abs_diff": round(float(diff.max()), 4), "mean_abs_diff": round(float(diff.mean()), 5)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cost")
    c.add_argument("files", type=Path, nargs="+")
    c.add_argument("--batch", type=int, nargs="+", default=[1, MAX_BATCH])
    a = sub.add_parser("accuracy")
    a.add_argument("dirs", type=Path, nargs="+", help="model folders (emotion.onnx with a sentiment output)")
    f = sub.add_parser("fidelity")
    f.add_argument("reference", type=Path)
    f.add_argument("other", type=Path)
    f.add_argument("--channel", choices=("clean", "telephone"), default="telephone")
    cut = sub.add_parser("cut", help="write the ensemble graph with one seed network only (needs onnx)")
    cut.add_argument("src", type=Path)
    cut.add_argument("dst", type=Path)
    cut.add_argument("--member", type=int, default=0)
    for s in (a, f):
        s.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    if args.what == "cost":
        res: dict = {f"batch_{b}": cpu_ms_per_window(args.files, b) for b in args.batch}
    elif args.what == "accuracy":
        clips = held_out(load_all(args.data))
        res = {"held_out_speakers": sorted({c.speaker for c in clips}), **accuracy(args.dirs, clips)}
    elif args.what == "fidelity":
        res = fidelity(args.reference, args.other, load_all(args.data), args.channel)
    else:
        import onnx

        from .light_profile import keep_member
        args.dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(keep_member(onnx.load(str(args.src)), args.member), str(args.dst))
        res = {"wrote": str(args.dst), "bytes": args.dst.stat().st_size}
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
