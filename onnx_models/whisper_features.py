"""Pooled Whisper-base features of every 2 s window the workers would score, per layer, cached outside the repo.

    python -m onnx_models.whisper_export pooled --layers 6 --out /work/feat/whisper_pooled_l6.onnx    # training venv (torch)
    nice -n 15 python -m onnx_models.whisper_features --onnx /work/feat/whisper_pooled_l6.onnx --cache /work/feat/whisper_base_layers

For each corpus (EMOVO, RAVDESS, EmoDB) and channel (clean 8 kHz, telephone band: the test channel of
`scoring.channel`), one ``{corpus}_{channel}.npz`` holding ``feats`` float16 [windows, 7, 1024] (mean and standard
deviation over time of the input embedding and of each of the 6 blocks, the last after the final norm),
``clip`` (the window's clip index) and per clip ``speaker``, ``sex``, ``emotion``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data import DEFAULT_DATA, load_corpus, windows_of
from .scoring import channel
from .whisper_encoder import WhisperEncoder, pooled
from .whisper_frontend import log_mel

PROBE_CORPORA = ("emovo", "ravdess", "emodb")
CHANNELS = ("clean", "telephone")
BATCH_WINDOWS = 16


def cache_path(cache: Path, corpus: str, kind: str) -> Path:
    return Path(cache) / f"{corpus}_{kind}.npz"


def numpy_pooled(model: Path | None) -> Callable[[np.ndarray], np.ndarray]:
    encoder = WhisperEncoder.load(model)
    return lambda windows: pooled(encoder.hidden_states(log_mel(windows)))


def onnx_pooled(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The `whisper_export` PooledLayers graph on onnxruntime, one thread: 2.4 times faster than numpy (same
    features to 1e-4 of values up to 60)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda windows: session.run(None, {"waveform": windows})[0]


def extract(features: Callable[[np.ndarray], np.ndarray], audios: list[np.ndarray], log=print) -> tuple[np.ndarray, np.ndarray]:
    """(feats [windows, layers, 2 * d] float16, clip index of each window)."""
    wins = [windows_of(a) for a in audios]
    flat = np.stack([w for ws in wins for w in ws])
    clip = np.repeat(np.arange(len(wins)), [len(ws) for ws in wins])
    out, t0 = [], time.time()
    for i in range(0, len(flat), BATCH_WINDOWS):
        out.append(features(flat[i:i + BATCH_WINDOWS]).astype(np.float16))
        if (i // BATCH_WINDOWS) % 50 == 0:
            log(f"  {i + len(out[-1])}/{len(flat)} windows, {time.time() - t0:.0f} s")
    return np.concatenate(out), clip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--cache", type=Path, required=True, help="folder for the .npz files (keep it outside the repository)")
    p.add_argument("--model", type=Path, default=None, help="CTranslate2 Whisper-base folder (default: the pinned packages)")
    p.add_argument("--onnx", type=Path, default=None, help="a whisper_export PooledLayers graph to run instead of the numpy encoder")
    p.add_argument("--corpora", nargs="+", default=list(PROBE_CORPORA))
    p.add_argument("--channels", nargs="+", default=list(CHANNELS), choices=CHANNELS)
    args = p.parse_args(argv)
    features = onnx_pooled(args.onnx) if args.onnx else numpy_pooled(args.model)
    args.cache.mkdir(parents=True, exist_ok=True)
    for corpus in args.corpora:
        clips = load_corpus(corpus, args.data)
        for kind in args.channels:
            dest = cache_path(args.cache, corpus, kind)
            if dest.exists():
                print(f"{dest} exists, kept")
                continue
            print(f"{corpus}/{kind}: {len(clips)} clips")
            feats, clip = extract(features, channel(clips, kind))
            np.savez(dest, feats=feats, clip=clip, speaker=np.array([c.speaker for c in clips]),
                     sex=np.array([c.sex for c in clips]), emotion=np.array([c.emotion for c in clips]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
