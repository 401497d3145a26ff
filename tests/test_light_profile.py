"""The light model profile (onnx_models/light_profile.py): one network of the shipped ensemble, rebuilt byte for byte
from the shipped files, chosen by CALLPULSE_MODEL_PROFILE, and refused together with a model folder."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from pydantic import ValidationError

from stream.settings import Settings
from workers.inference import PROFILE_FOLDERS, ModelContractError, Models, default_model_dir

onnx = pytest.importorskip("onnx", reason="the cut needs onnx (test extra)")
from onnx_models.light_profile import build, keep_member  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "onnx_models"
LIGHT = ROOT / PROFILE_FOLDERS["light"]


def test_the_shipped_light_files_are_network_0_of_the_shipped_ensemble(tmp_path):
    manifest = build(ROOT, tmp_path, member=0)
    for name in ("emotion.onnx", "sentiment.onnx", "manifest.json"):
        assert (tmp_path / name).read_bytes() == (LIGHT / name).read_bytes(), name
    assert manifest["emotion.onnx"]["model_version"].endswith("-light")


def test_the_light_graph_scores_what_network_0_scores_inside_the_ensemble(tmp_path):
    """The ensemble averages its networks' probabilities: with the other two cut out, network 0 alone is left."""
    x = np.random.default_rng(0).normal(0, 0.1, (3, 16000)).astype(np.float32)
    each = []
    for member in range(3):
        onnx.save(keep_member(onnx.load(str(ROOT / "emotion.onnx")), member), str(tmp_path / f"n{member}.onnx"))
        each.append(ort.InferenceSession(str(tmp_path / f"n{member}.onnx"), providers=["CPUExecutionProvider"]).run(None, {"waveform": x}))
    light = ort.InferenceSession(str(LIGHT / "emotion.onnx"), providers=["CPUExecutionProvider"]).run(None, {"waveform": x})
    whole = ort.InferenceSession(str(ROOT / "emotion.onnx"), providers=["CPUExecutionProvider"]).run(None, {"waveform": x})
    assert np.allclose(each[0][0].sum(1), 1, atol=1e-5) and not np.allclose(each[0][0], each[1][0], atol=1e-3)
    for head in range(2):                                             # emotion, and sentiment as the second output
        assert np.allclose(light[head], each[0][head], atol=1e-6)
        assert np.allclose(np.mean([e[head] for e in each], axis=0), whole[head], atol=1e-5)
        assert not np.allclose(light[head], whole[head], atol=1e-3)
    assert len(onnx.load(str(LIGHT / "emotion.onnx")).graph.node) < len(onnx.load(str(ROOT / "emotion.onnx")).graph.node) / 2


def test_cutting_refuses_a_graph_that_is_not_an_ensemble_or_a_member_it_lacks():
    with pytest.raises(ValueError, match="member must be in 0..2"):
        keep_member(onnx.load(str(ROOT / "emotion.onnx")), 3)
    with pytest.raises(ValueError, match="not an ensemble graph"):
        keep_member(onnx.load(str(LIGHT / "emotion.onnx")), 0)


def test_the_profile_setting_chooses_the_shipped_folder(monkeypatch):
    monkeypatch.setenv("CALLPULSE_MODEL_PROFILE", "light")
    models = Models.for_settings(Settings())
    assert Path(models.emotion.info.path).parent == LIGHT.resolve() == default_model_dir("light")
    assert models.emotion.info.version.endswith("-light") and models.joint_output == "sentiment_probabilities"
    meta = json.loads((LIGHT / "manifest.json").read_text())
    assert list(models.emotion.labels) == meta["emotion.onnx"]["labels"]
    monkeypatch.delenv("CALLPULSE_MODEL_PROFILE")
    assert Path(Models.for_settings(Settings()).emotion.info.path).parent == ROOT.resolve()


def test_a_model_folder_and_a_profile_together_are_refused(monkeypatch):
    monkeypatch.setenv("CALLPULSE_MODEL_PROFILE", "light")
    with pytest.raises(ValidationError, match="both choose the models"):
        Settings(model_dir=str(ROOT))
    monkeypatch.setenv("CALLPULSE_MODEL_PROFILE", "tiny")
    with pytest.raises(ValidationError, match="model_profile"):
        Settings()
    with pytest.raises(ModelContractError, match="model profile must be one of"):
        default_model_dir("tiny")
