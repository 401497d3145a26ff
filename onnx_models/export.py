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

from .dsp import SAMPLE_RATE_HZ, WINDOW_S
from .labels import EMOTIONS, SENTIMENTS
from .manifest import write_manifest

OPSET = 17
MODEL_VERSION = "0.6.0"


SENTIMENT_OUTPUT = "sentiment_probabilities"


class Head(nn.Module):
    """Probabilities of head ``which`` (0 emotion, 1 sentiment); with ``and_sentiment`` the sentiment head's as a
    second output, so that a worker runs the shared network once for both."""

    def __init__(self, model: nn.Module, which: int, and_sentiment: bool = False) -> None:
        super().__init__()
        self.model = model
        self.which = which
        self.and_sentiment = and_sentiment

    def forward(self, waveform: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        out = self.model(waveform)
        first = torch.softmax(out[self.which], dim=1)
        return (first, torch.softmax(out[1], dim=1)) if self.and_sentiment else first


def weights_id(model: nn.Module) -> str:
    """Identifies the trained weights, so a worker can tell that emotion.onnx's second output and sentiment.onnx
    come from the same model (and only then skip running sentiment.onnx)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    """The checkpoint's network, or the SeedEnsemble of its networks, in eval mode."""
    from .train import load_members
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return load_members(ckpt), ckpt


def describe(ckpt: dict) -> tuple[str, str]:
    """(architecture, training) as written into the models' metadata."""
    seeds = ckpt.get("seeds", [ckpt.get("seed", 0)])
    arch = ckpt["arch"] if len(seeds) == 1 else f"{ckpt['arch']} x{len(seeds)}"
    who = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean of {len(seeds)} networks, seeds {', '.join(map(str, seeds))}"
    base = [c.upper() for c in ckpt.get("corpora", ["emovo", "ravdess"]) if c in ("emovo", "ravdess")]
    corpora = " + ".join([*base, *ckpt.get("extra_train", [])])   # extra corpora by their folder names
    return arch, f"{ckpt['arch']} trained {ckpt['epochs']} epochs ({who}) on {corpora} with telephone augmentation"


def export_head(model: nn.Module, which: int, labels: tuple[str, ...], path: Path, description: str, arch: str,
                and_sentiment: bool = False) -> None:
    dummy = torch.zeros(2, int(WINDOW_S * SAMPLE_RATE_HZ))
    head = Head(model, which, and_sentiment).eval()   # a fresh Module is in training mode, and export restores it (and its submodules) afterwards
    outputs = ["probabilities"] + ([SENTIMENT_OUTPUT] if and_sentiment else [])
    torch.onnx.export(head, (dummy,), str(path), input_names=["waveform"], output_names=outputs,
                      dynamic_axes={"waveform": {0: "batch", 1: "samples"}, **{o: {0: "batch"} for o in outputs}},
                      opset_version=OPSET, dynamo=False)
    m = onnx.load(str(path))
    meta = {"sample_rate": str(SAMPLE_RATE_HZ), "labels": json.dumps(list(labels)), "model_version": MODEL_VERSION,
            "window_s": str(WINDOW_S), "architecture": arch, "description": description,
            "input_contract": "float32 [batch, samples] mono waveform in [-1, 1]; 1-8 s windows",
            "weights_id": weights_id(model)}
    if and_sentiment:
        meta["sentiment_output"] = SENTIMENT_OUTPUT
        meta["sentiment_labels"] = json.dumps(list(SENTIMENTS))
    onnx.helper.set_model_props(m, meta)
    onnx.save(m, str(path))


def check_parity(model: nn.Module, path: Path, which: int, output: int = 0) -> float:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for seconds in (1.0, 2.0, 8.0):
        x = (rng.normal(0, 0.1, (3, int(seconds * SAMPLE_RATE_HZ)))).astype(np.float32)
        with torch.no_grad():
            ref = torch.softmax(model(torch.from_numpy(x))[which], dim=1).numpy()
        got = sess.run(None, {"waveform": x})[output]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = p.parse_args(argv)
    model, ckpt = load_checkpoint(args.checkpoint)
    args.out.mkdir(parents=True, exist_ok=True)
    arch, desc = describe(ckpt)
    export_head(model, 0, EMOTIONS, args.out / "emotion.onnx", "speech emotion (and sentiment as a second output); " + desc, arch,
                and_sentiment=True)
    export_head(model, 1, SENTIMENTS, args.out / "sentiment.onnx", "speech sentiment (own head); " + desc, arch)
    for which, name, output in ((0, "emotion.onnx", 0), (1, "emotion.onnx", 1), (1, "sentiment.onnx", 0)):
        err = check_parity(model, args.out / name, which, output)
        if err > 1e-4:
            raise SystemExit(f"{name} output {output}: ONNX differs from torch by {err:.2e}")
        print(f"{name} output {output}: parity with torch {err:.1e}")
    print(json.dumps(write_manifest(args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
