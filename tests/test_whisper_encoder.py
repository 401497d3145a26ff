"""Whisper-base's encoder re-implemented in numpy (and in torch, when installed) against CTranslate2's own encoder on
the pinned weights. Needs the `encoder` extra (the two weight packages and ctranslate2); skipped without it, so CI
(which does not install it) never downloads the 145 MB model."""

import os
from pathlib import Path

import numpy as np
import pytest

ctranslate2 = pytest.importorskip("ctranslate2", reason="the encoder extra is not installed")

from onnx_models.whisper_encoder import WhisperEncoder, pooled   # noqa: E402
from onnx_models.whisper_frontend import log_mel   # noqa: E402
from onnx_models.whisper_package import CACHE_ENV, model_dir   # noqa: E402


@pytest.fixture(scope="module")
def model_folder() -> Path:
    try:
        return model_dir()
    except ModuleNotFoundError as e:
        if os.environ.get(CACHE_ENV):
            raise
        pytest.skip(str(e))


def _speechlike(n: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced pulses through two moving resonances, with pauses: enough structure to move every layer."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 8000)) / 8000
    out = []
    for i in range(n):
        f0 = 110 + 60 * i + 20 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / 8000
        voiced = sum(np.sin(k * phase) / k for k in range(1, 25)) * (np.sin(2 * np.pi * (1.5 + 0.3 * i) * t) > -0.3)
        out.append(0.1 * voiced + 0.003 * rng.normal(size=t.size))
    return np.stack(out).astype(np.float32)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("seconds", [2.0, 5.0])
def test_numpy_encoder_equals_ctranslate2(model_folder, seconds):
    mel = log_mel(_speechlike(3, seconds))
    ct2 = ctranslate2.models.Whisper(str(model_folder), device="cpu", compute_type="float32", intra_threads=1)
    ref = np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel))))
    states = WhisperEncoder.load(model_folder).hidden_states(mel)
    assert len(states) == 7 and ref.shape == states[-1].shape == (3, int(seconds * 50), 512)
    assert _cosines(ref, states[-1]).min() > 0.99999
    assert np.abs(ref - states[-1]).max() < 0.01 * np.abs(ref).max()
    # the layers are different representations, not copies of one another
    feats = pooled(states)
    assert feats.shape == (3, 7, 1024)
    assert max(_cosines(feats[:, i], feats[:, i + 1]).min() for i in range(6)) < 0.99


def test_truncated_encoder_stops_early_with_the_same_states(model_folder):
    mel = log_mel(_speechlike(2, 2.0, seed=3))
    enc = WhisperEncoder.load(model_folder)
    full, first3 = enc.hidden_states(mel), enc.hidden_states(mel, layers=3)
    assert len(first3) == 4
    for a, b in zip(full[:4], first3):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
