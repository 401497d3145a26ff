"""Export a trained checkpoint to the shipped-model contract (waveform in, probabilities out) and write the manifest.

    python -m onnx_models.export artifacts/model.pt --out onnx_models
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from .frontend import SAMPLE_RATE_HZ, WINDOW_S
from .labels import EMOTIONS, SENTIMENTS
from .models import ARCHITECTURES

OPSET = 17
MODEL_VERSION = "0.3.0"


class Head(nn.Module):
    def __init__(self, model: nn.Module, which: int) -> None:
        super().__init__()
        self.model = model
        self.which = which

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(waveform)[self.which], dim=1)


def load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = ARCHITECTURES[ckpt["arch"]]()
    model.load_state_dict(ckpt["state"])
    return model.eval(), ckpt


def export_head(model: nn.Module, which: int, labels: tuple[str, ...], path: Path, description: str, arch: str) -> None:
    dummy = torch.zeros(2, int(WINDOW_S * SAMPLE_RATE_HZ))
    head = Head(model, which).eval()   # a fresh Module is in training mode, and export restores it (and its submodules) afterwards
    torch.onnx.export(head, (dummy,), str(path), input_names=["waveform"], output_names=["probabilities"],
                      dynamic_axes={"waveform": {0: "batch", 1: "samples"}, "probabilities": {0: "batch"}},
                      opset_version=OPSET, dynamo=False)
    m = onnx.load(str(path))
    meta = {"sample_rate": str(SAMPLE_RATE_HZ), "labels": json.dumps(list(labels)), "model_version": MODEL_VERSION,
            "window_s": str(WINDOW_S), "architecture": arch, "description": description,
            "input_contract": "float32 [batch, samples] mono waveform in [-1, 1]; 1-8 s windows"}
    del m.metadata_props[:]
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(m, str(path))


def check_parity(model: nn.Module, path: Path, which: int) -> float:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for seconds in (1.0, 2.0, 8.0):
        x = (rng.normal(0, 0.1, (3, int(seconds * SAMPLE_RATE_HZ)))).astype(np.float32)
        with torch.no_grad():
            ref = torch.softmax(model(torch.from_numpy(x))[which], dim=1).numpy()
        got = sess.run(None, {"waveform": x})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def write_manifest(out: Path) -> dict:
    manifest = {}
    for name in ("emotion.onnx", "sentiment.onnx"):
        p = out / name
        m = onnx.load(str(p))
        meta = {e.key: e.value for e in m.metadata_props}
        manifest[name] = {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size,
                          "labels": json.loads(meta["labels"]), "sample_rate": int(meta["sample_rate"]),
                          "opset": m.opset_import[0].version, "model_version": meta["model_version"]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = p.parse_args(argv)
    model, ckpt = load_checkpoint(args.checkpoint)
    desc = f"{ckpt['arch']} trained {ckpt['epochs']} epochs, seed {ckpt['seed']}, on EMOVO + RAVDESS with telephone augmentation"
    export_head(model, 0, EMOTIONS, args.out / "emotion.onnx", "speech emotion; " + desc, ckpt["arch"])
    export_head(model, 1, SENTIMENTS, args.out / "sentiment.onnx", "speech sentiment (own head); " + desc, ckpt["arch"])
    for which, name in ((0, "emotion.onnx"), (1, "sentiment.onnx")):
        err = check_parity(model, args.out / name, which)
        if err > 1e-4:
            raise SystemExit(f"{name}: ONNX output differs from torch by {err:.2e}")
        print(f"{name}: parity with torch {err:.1e}")
    print(json.dumps(write_manifest(args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
