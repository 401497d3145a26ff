"""Small speech-emotion networks on the in-graph log-mel front-end, with two heads (emotion, sentiment)."""

from __future__ import annotations

import torch
from torch import nn

from .dsp import N_MELS
from .frontend import LogMel
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


class SpecAugment(nn.Module):
    """Training only: zero ``masks`` random stripes of up to ``max_bands`` mel bands and of up to ``max_frames``
    frames in each normalised log-mel window. The identity in eval mode, so the exported graph has no trace of it."""

    def __init__(self, masks: int = 2, max_bands: int = 5, max_frames: int = 9) -> None:
        super().__init__()
        self.masks, self.max_bands, self.max_frames = masks, max_bands, max_frames

    def _stripes(self, batch: int, length: int, widest: int) -> torch.Tensor:
        """[batch, length] True where one of the random stripes falls."""
        pos = torch.arange(length).unsqueeze(0)
        hit = torch.zeros(batch, length, dtype=torch.bool)
        for _ in range(self.masks):
            width = torch.randint(0, widest + 1, (batch, 1))
            start = (torch.rand(batch, 1) * (length - width + 1)).floor()
            hit |= (pos >= start) & (pos < start + width)
        return hit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.masks == 0:
            return x
        b, bands, frames = x.shape
        keep = ~(self._stripes(b, bands, self.max_bands).unsqueeze(2) | self._stripes(b, frames, self.max_frames).unsqueeze(1))
        return x * keep


class TwoHeadNet(nn.Module):
    """Waveform -> log-mel front-end -> (SpecAugment in training) -> embedding (``embed``) -> two linear heads:
    emotion logits and sentiment logits."""

    frontend: LogMel
    augment: SpecAugment
    emotion: nn.Linear
    sentiment: nn.Linear

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """[B, N_MELS, frames] normalised log-mel -> [B, D]."""
        raise NotImplementedError

    def classify(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.embed(self.augment(features))
        return self.emotion(z), self.sentiment(z)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classify(self.frontend(wave))


class SeedEnsemble(nn.Module):
    """Networks of one architecture trained with different seeds, sharing one front-end: the mean of their
    probabilities, returned as log-probabilities so that a softmax (as for a single network) gives that mean."""

    def __init__(self, members: list[TwoHeadNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.members[0].frontend(wave)      # parameter-free and identical in every member
        outs = [m.classify(features) for m in self.members]
        return tuple(torch.log(torch.stack([torch.softmax(o[head], dim=1) for o in outs]).mean(dim=0)) for head in (0, 1))


def _block(cin: int, cout: int, k: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU())


class TemporalCNN(TwoHeadNet):
    """1-D convolutions over time with the mel bands as channels (cheap: ~5 M multiply-adds per 2 s window)."""

    def __init__(self, width: int = 96, dropout: float = 0.3) -> None:
        super().__init__()
        self.frontend = LogMel()
        self.augment = SpecAugment()
        self.body = nn.Sequential(
            _block(N_MELS, width, 5, 1), _block(width, width, 3, 2), _block(width, width + 32, 3, 2), _block(width + 32, width + 32, 3, 2),
        )
        self.pool = AttentionPool(width + 32)
        self.drop = nn.Dropout(dropout)
        self.emotion = nn.Linear(2 * (width + 32), len(EMOTIONS))
        self.sentiment = nn.Linear(2 * (width + 32), len(SENTIMENTS))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pool(self.body(features)))


def _block2d(cin: int, cout: int, stride: int | tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class SpectrogramCNN(TwoHeadNet):
    """2-D convolutions over the log-mel image (local time-frequency patterns: pitch movement, formant shifts,
    harmonic energy), then 1-D convolutions over time with the frequency rows as channels, attention pooling.
    ~15 M multiply-adds per 2 s window (plus ~7 M in the front-end)."""

    def __init__(self, channels: int = 16, width: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.frontend = LogMel()
        self.augment = SpecAugment()
        # frequency / 4, time / 2
        self.image = nn.Sequential(_block2d(1, channels, 1), _block2d(channels, channels, (2, 1)), _block2d(channels, 2 * channels, 2))
        rows = 2 * channels * ((N_MELS + 3) // 4)
        self.body = nn.Sequential(_block(rows, width, 3, 1), _block(width, width, 3, 2), _block(width, width, 3, 2))
        self.pool = AttentionPool(width)
        self.drop = nn.Dropout(dropout)
        self.emotion = nn.Linear(2 * width, len(EMOTIONS))
        self.sentiment = nn.Linear(2 * width, len(SENTIMENTS))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        h = self.image(features.unsqueeze(1))                                   # [B, C, mels / 4, frames / 2]
        h = h.flatten(1, 2)                                                     # [B, C * mels / 4, frames / 2]
        return self.drop(self.pool(self.body(h)))


class CRNN(TwoHeadNet):
    """Convolutions then a bidirectional GRU over time, attention pooling (the costlier comparison model)."""

    def __init__(self, width: int = 64, hidden: int = 64, dropout: float = 0.3) -> None:
        super().__init__()
        self.frontend = LogMel()
        self.augment = SpecAugment()
        self.body = nn.Sequential(_block(N_MELS, width, 5, 1), _block(width, width, 3, 2))
        self.gru = nn.GRU(width, hidden, batch_first=True, bidirectional=True)
        self.pool = AttentionPool(2 * hidden)
        self.drop = nn.Dropout(dropout)
        self.emotion = nn.Linear(4 * hidden, len(EMOTIONS))
        self.sentiment = nn.Linear(4 * hidden, len(SENTIMENTS))

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        h = self.body(features).transpose(1, 2)
        h, _ = self.gru(h)
        return self.drop(self.pool(h.transpose(1, 2)))


ARCHITECTURES = {"tcnn": TemporalCNN, "cnn2d": SpectrogramCNN, "crnn": CRNN}
