"""The seed ensemble that ships: its probabilities are the mean of its networks', in torch and in the exported graph.
Training code: skipped where torch (a training extra) is not installed."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is a training extra")

from onnx_models.evaluate import mean_predictions  # noqa: E402
from onnx_models.export import check_parity, export_head  # noqa: E402
from onnx_models.labels import EMOTIONS  # noqa: E402
from onnx_models.models import SeedEnsemble, SpectrogramCNN  # noqa: E402
from onnx_models.train import load_members  # noqa: E402


def _nets(n: int) -> list:
    torch.manual_seed(7)
    return [SpectrogramCNN().eval() for _ in range(n)]


def test_ensemble_probabilities_are_the_mean_of_its_networks():
    nets = _nets(3)
    wave = torch.randn(5, 16000) * 0.1
    with torch.no_grad():
        emo, sent = SeedEnsemble(nets).eval()(wave)
        for head, out in ((0, emo), (1, sent)):
            each = torch.stack([torch.softmax(n(wave)[head], dim=1) for n in nets])
            assert torch.allclose(torch.softmax(out, dim=1), each.mean(0), atol=1e-6)
            assert not torch.allclose(each[0], each[1], atol=1e-3)   # the members differ, so the mean is not trivial


def test_checkpoint_members_load_as_one_network_or_an_ensemble():
    nets = _nets(2)
    one = load_members({"arch": "cnn2d", "members": [{"seed": 0, "state": nets[0].state_dict()}]})
    both = load_members({"arch": "cnn2d", "members": [{"seed": s, "state": n.state_dict()} for s, n in enumerate(nets)]})
    legacy = load_members({"arch": "cnn2d", "state": nets[1].state_dict()})
    assert isinstance(one, SpectrogramCNN) and isinstance(legacy, SpectrogramCNN)
    assert isinstance(both, SeedEnsemble) and len(both.members) == 2
    wave = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        assert torch.allclose(one(wave)[0], nets[0](wave)[0]) and torch.allclose(legacy(wave)[0], nets[1](wave)[0])


def test_exported_ensemble_matches_torch(tmp_path: Path):
    ensemble = SeedEnsemble(_nets(2)).eval()
    export_head(ensemble, 0, EMOTIONS, tmp_path / "emotion.onnx", "test", "cnn2d x2")
    assert check_parity(ensemble, tmp_path / "emotion.onnx", 0) < 1e-5


def test_mean_predictions_averages_window_probabilities_per_clip():
    a = {"clean": ([np.full((2, 8), 0.2), np.full((1, 8), 0.0)], [np.full((2, 3), 1.0), np.full((1, 3), 0.0)])}
    b = {"clean": ([np.full((2, 8), 0.4), np.full((1, 8), 1.0)], [np.full((2, 3), 0.0), np.full((1, 3), 1.0)])}
    emo, sent = mean_predictions([a, b])["clean"]
    assert np.allclose(emo[0], 0.3) and np.allclose(emo[1], 0.5) and emo[0].shape == (2, 8)
    assert np.allclose(sent[0], 0.5) and np.allclose(sent[1], 0.5)
