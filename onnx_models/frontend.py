"""The log-mel front-end, in torch, exported inside the ONNX graphs (waveform in), so training and serving
compute identical features. Its constants live in `dsp`."""

from __future__ import annotations

import torch
from torch import nn

from .dsp import HOP, LOG_FLOOR, N_FFT, dft_basis, mel_filterbank


class LogMel(nn.Module):
    """[batch, samples] in [-1, 1] -> [batch, N_MELS, frames] log-mel, normalised per window and band
    (mean and variance over time), which removes most of the channel: microphone, codec, line level."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("basis", torch.from_numpy(dft_basis()))
        self.register_buffer("mel", torch.from_numpy(mel_filterbank()))
        self.n_bins = N_FFT // 2 + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = nn.functional.conv1d(wave.unsqueeze(1), self.basis, stride=HOP)      # [B, 2*bins, frames]
        power = spec[:, : self.n_bins] ** 2 + spec[:, self.n_bins:] ** 2
        logmel = torch.log(torch.matmul(self.mel, power) + LOG_FLOOR)              # [B, mels, frames]
        mean = logmel.mean(dim=2, keepdim=True)
        std = ((logmel - mean) ** 2).mean(dim=2, keepdim=True).add(1e-5).sqrt()
        return (logmel - mean) / std
