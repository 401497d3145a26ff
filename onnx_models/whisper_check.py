"""The accurate profile run as a worker would run it, on real windows: each speaker's windows in arrival order
through the ONNX file, the leg's running statistics (`LegState`) fed as ``leg_stats`` and updated with the
returned ``pooled_features``. Compares the file with the numpy head on the cached features (parity) and INT8
with fp32 (agreement). No torch.

    nice -n 15 python -m onnx_models.whisper_check /work/feat/accurate/whisper_accurate.onnx /work/feat/accurate/whisper_accurate.int8.onnx \
        --head onnx_models/whisper_head.npz --cache /work/feat/whisper_base_layers --corpus emovo --out onnx_models/reports/whisper_profile_check.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .cost import session
from .data import DEFAULT_DATA, load_corpus, windows_of
from .scoring import channel
from .whisper_features import cache_path
from .whisper_head import head_probabilities
from .whisper_legnorm import GlobalStats, LegState

CHANNEL = "telephone"


def run_legs(run, head: dict, speakers: list[str], order: np.ndarray) -> np.ndarray:
    """Emotion probabilities of every window, each speaker a leg fed in ``order``: ``run(i, stats)`` ->
    (emotion [1, 8], pooled features [1, dim]) of window i normalised with the leg's ``stats`` [1, 2, dim]."""
    prior = GlobalStats(head["prior_mean"].astype(np.float64), head["prior_var"].astype(np.float64))
    legs: dict[str, LegState] = {}
    out = np.zeros((len(speakers), len(head["emotion_b"])), np.float32)
    for i in order:
        leg = legs.setdefault(speakers[i], LegState(prior, float(head["prior_windows"])))
        emo, feats = run(i, leg.stats()[None])
        out[i] = emo[0]
        leg.add(feats[0])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", type=Path, nargs="+", help="the fp32 profile first, then e.g. its INT8 version")
    p.add_argument("--head", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--corpus", default="emovo")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    head = dict(np.load(args.head))
    clips = load_corpus(args.corpus, args.data)
    per_clip = [windows_of(a) for a in channel(clips, CHANNEL)]
    windows = [w for ws in per_clip for w in ws]
    speakers = [c.speaker for c, ws in zip(clips, per_clip) for _ in ws]
    order = np.random.default_rng(0).permutation(len(windows))       # one arrival order over all legs
    cached = np.load(cache_path(args.cache, args.corpus, CHANNEL))["feats"].astype(np.float32)
    if len(cached) != len(windows):
        raise SystemExit(f"cache has {len(cached)} windows, the corpus gives {len(windows)}: not the same audio")

    results: dict = {"corpus": args.corpus, "channel": CHANNEL, "windows": len(windows)}

    def numpy_run(i, stats):
        feats = cached[i:i + 1]
        return head_probabilities(head, feats, stats.astype(np.float64))[0], feats[:, head["layers"]].reshape(1, -1)
    probs = {"numpy_head_on_cache": run_legs(numpy_run, head, speakers, order)}
    for path in args.models:
        s = session(path)

        def onnx_run(i, stats, s=s):
            feed = {"waveform": windows[i][None], **({"leg_stats": stats} if str(head["norm"]) == "causal" else {})}
            emo, _, feats = s.run(None, feed)
            return emo, feats
        probs[path.name] = run_legs(onnx_run, head, speakers, order)
    base = probs["numpy_head_on_cache"]
    for name, pr in probs.items():
        if name == "numpy_head_on_cache":
            continue
        results[name] = {"max_abs_diff_vs_numpy": round(float(np.abs(pr - base).max()), 5),
                         "top1_agreement_vs_numpy": round(float((pr.argmax(1) == base.argmax(1)).mean()), 4)}
    if len(args.models) > 1:
        first = probs[args.models[0].name]
        for path in args.models[1:]:
            results[path.name]["top1_agreement_vs_" + args.models[0].name] = round(float((probs[path.name].argmax(1) == first.argmax(1)).mean()), 4)
            results[path.name]["max_abs_diff_vs_" + args.models[0].name] = round(float(np.abs(probs[path.name] - first).max()), 5)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
