"""Small speech-emotion networks on the in-graph log-mel front-end, with two heads (emotion, sentiment)."""

from __future__ import annotations

import torch
from torch import nn

from .frontend import N_MELS, LogMel
from .labels import EMOTIONS, SENTIMENTS


class AttentionPool(nn.Module):
    """Attention-weighted mean plus standard deviation over time: [B, C, T] -> [B, 2C]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv1d(channels, 1, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.score(h), dim=2)
        mean = (h * w).sum(dim=2)
        var = (h * h * w).sum(dim=2) - mean * mean
        return torch.cat([mean, var.clamp(min=1e-6).sqrt()], dim=1)


def _block(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU())


class TemporalCNN(nn.Module):
    """1-D convolutions over time with the mel bands as channels (cheap: ~3 M multiply-adds per 2 s window)."""

    def __init__(self, width: int = 96, dropout: float = 0.3) -> None:
        super().__init__()
        self.frontend = LogMel()
        self.body = nn.Sequential(
            _block(N_MELS, width, 5, 1), _block(width, width, 3, 2), _block(width, width + 32, 3, 2), _block(width + 32, width + 32, 3, 2),
        )
        self.pool = AttentionPool(width + 32)
        self.drop = nn.Dropout(dropout)
        self.emotion = nn.Linear(2 * (width + 32), len(EMOTIONS))
        self.sentiment = nn.Linear(2 * (width + 32), len(SENTIMENTS))

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pool(self.body(self.frontend(wave))))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.embed(wave)
        return self.emotion(z), self.sentiment(z)


class CRNN(nn.Module):
    """Convolutions then a bidirectional GRU over time, attention pooling (the costlier comparison model)."""

    def __init__(self, width: int = 64, hidden: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        self.frontend = LogMel()
        self.body = nn.Sequential(_block(N_MELS, width, 5, 1), _block(width, width, 3, 2))
        self.gru = nn.GRU(width, hidden, batch_first=True, bidirectional=True)
        self.pool = AttentionPool(2 * hidden)
        self.drop = nn.Dropout(dropout)
        self.emotion = nn.Linear(4 * hidden, len(EMOTIONS))
        self.sentiment = nn.Linear(4 * hidden, len(SENTIMENTS))

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        h = self.body(self.frontend(wave)).transpose(1, 2)
        h, _ = self.gru(h)
        return self.drop(self.pool(h.transpose(1, 2)))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.embed(wave)
        return self.emotion(z), self.sentiment(z)


ARCHITECTURES = {"tcnn": TemporalCNN, "crnn": CRNN}
