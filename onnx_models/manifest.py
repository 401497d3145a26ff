"""A model folder's bookkeeping: manifest.json (the SHA-256, size, labels, rate, opset and version of each shipped ONNX
file, and its quantisation where it has one), the check that emotion.onnx's second output still equals
sentiment.onnx, and rewriting a folder file by file (`fold_frontend`, `light_profile`). Torch-free."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

SHIPPED = ("emotion.onnx", "sentiment.onnx")


def write_manifest(out: Path) -> dict:
    manifest = {}
    for name in SHIPPED:
        p = out / name
        m = onnx.load(str(p))
        meta = {e.key: e.value for e in m.metadata_props}
        manifest[name] = {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size,
                          "labels": json.loads(meta["labels"]), "sample_rate": int(meta["sample_rate"]),
                          "opset": m.opset_import[0].version, "model_version": meta["model_version"]}
        if "quantisation" in meta:
            manifest[name]["quantisation"] = meta["quantisation"]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def check_joint_sentiment(folder: Path, atol: float = 1e-5) -> float:
    """emotion.onnx's second output must still equal sentiment.onnx (the workers then run one graph per window)."""
    import onnxruntime as ort
    emo, sent = (ort.InferenceSession(str(folder / n), providers=["CPUExecutionProvider"]) for n in SHIPPED)
    x = np.random.default_rng(0).normal(0, 0.1, (8, 16000)).astype(np.float32)
    worst = float(np.abs(emo.run(None, {"waveform": x})[1] - sent.run(None, {"waveform": x})[0]).max())
    if worst > atol:
        raise SystemExit(f"emotion.onnx's sentiment output differs from sentiment.onnx by {worst:.2e} (> {atol})")
    return worst


def rewrite_folder(src: Path, out: Path, rewrite: Callable[[onnx.ModelProto], onnx.ModelProto]) -> tuple[float, dict]:
    """Each shipped file of ``src`` through ``rewrite`` into ``out``, then the joint-sentiment check (its largest
    difference) and the new manifest."""
    if src.resolve() == out.resolve():
        raise SystemExit("--out must differ from the source folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED:
        onnx.save(rewrite(onnx.load(str(src / name))), str(out / name))
    return check_joint_sentiment(out), write_manifest(out)
