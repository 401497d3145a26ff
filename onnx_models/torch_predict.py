"""A torch model's predictions on clips, and their scores: what training (a held-out check after each epoch or
run) and evaluation (every protocol) both need. Its own module so that ``train`` and ``evaluate`` do not import
each other."""

from __future__ import annotations

import numpy as np
import torch

from .data import Clip
from .labels import EMOTIONS, EMOVO_EMOTIONS
from .scoring import Predictions, channel, predict_windows, score, score_channels

# What a speaker fold is scored on: RAVDESS on its 8 classes, EMOVO on its 7.
FOLD_LABEL_SETS: dict[str, tuple[str, ...]] = {"ravdess": tuple(EMOTIONS), "emovo": EMOVO_EMOTIONS}


@torch.no_grad()
def predict(model, audios: list[np.ndarray], batch: int = 256) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per clip: window emotion probabilities [w, 8] and sentiment-head probabilities [w, 3]."""
    def probabilities(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, s = model(torch.from_numpy(windows))
        return torch.softmax(e, 1).numpy(), torch.softmax(s, 1).numpy()
    return predict_windows(probabilities, audios, batch)


@torch.no_grad()
def quick_ua(model, clips: list[Clip]) -> float:
    model.eval()
    emo, sent = predict(model, [c.audio for c in clips])
    model.train()
    return score(clips, emo, sent, tuple(EMOTIONS))["clip"]["emotion"]["ua"]


def predict_channels(model, test: list[Clip]) -> Predictions:
    return {kind: predict(model, channel(test, kind)) for kind in ("clean", "telephone")}


def evaluate_model(model, test: list[Clip], label_sets: dict[str, tuple[str, ...]]) -> dict:
    return score_channels(test, predict_channels(model, test), label_sets)
