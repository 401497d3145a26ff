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


def test_torch_encoder_loads_into_openai_whisper_and_matches_every_layer(model_folder):
    """The converter's state dict loads strictly into openai-whisper's AudioEncoder (30 s input, as it demands),
    and the length-free `EncoderLayers` gives the numpy encoder's states layer by layer."""
    torch = pytest.importorskip("torch", reason="torch is only in the training venv")
    from onnx_models.whisper_ct2 import read_model
    from onnx_models.whisper_torch import load_encoder, state_dict_from_ct2
    mel = log_mel(_speechlike(2, 2.0, seed=5))
    ours = load_encoder(model_folder)
    with torch.no_grad():
        states = [s.numpy() for s in ours(torch.from_numpy(mel))]
    for a, b in zip(states, WhisperEncoder.load(model_folder).hidden_states(mel)):
        assert _cosines(a, b).min() > 0.99999
    whisper_model = pytest.importorskip("whisper.model", reason="openai-whisper not installed")
    reference = whisper_model.AudioEncoder(80, 1500, 512, 8, 6)
    reference.load_state_dict(state_dict_from_ct2(read_model(model_folder, prefix="encoder/")[1]), strict=True)
    mel30 = torch.from_numpy(log_mel(_speechlike(1, 30.0, seed=6)))
    with torch.no_grad():
        assert _cosines(reference(mel30).numpy(), ours(mel30)[-1].numpy()).min() > 0.99999


def test_onnx_pooled_layers_graph_equals_numpy_features(model_folder, tmp_path):
    """The exported waveform -> pooled layers graph (torch front end + encoder, run by onnxruntime) against the
    numpy front end and encoder."""
    pytest.importorskip("torch", reason="torch is only in the training venv")
    import onnxruntime as ort
    from onnx_models.whisper_export import PooledLayers, export
    path = export(PooledLayers(model_folder, layers=3), tmp_path / "pooled.onnx", "pooled_layers", {})
    wave = _speechlike(3, 2.0, seed=7)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"waveform": wave})[0]
    want = pooled(WhisperEncoder.load(model_folder).hidden_states(log_mel(wave), layers=3))
    assert got.shape == want.shape == (3, 4, 1024)
    assert _cosines(got, want).min() > 0.99999


def test_accurate_profile_meets_the_contract_and_its_optional_leg_stats_input(model_folder, tmp_path):
    """A profile built from a (random) causal head over blocks 1-2: the contract (waveform in, emotion
    probabilities first, labels and rate in metadata), the numpy reference head, and leg_stats: left out it is
    the prior, given it is used."""
    pytest.importorskip("torch", reason="torch is only in the training venv")
    import json

    import onnxruntime as ort
    from onnx_models.whisper_export import export_profile
    from onnx_models.whisper_head import head_probabilities
    rng = np.random.default_rng(8)
    dim = 2 * 1024
    head = {"layers": np.array([1, 2]), "view": np.array("L1-2"), "norm": np.array("causal"),
            "prior_mean": rng.normal(0, 1, dim).astype(np.float32), "prior_var": rng.uniform(0.5, 2, dim).astype(np.float32),
            "prior_windows": np.array(10.0, np.float32),
            "emotion_w": rng.normal(0, 0.05, (8, dim)).astype(np.float32), "emotion_b": np.zeros(8, np.float32),
            "sentiment_w": rng.normal(0, 0.05, (3, dim)).astype(np.float32), "sentiment_b": np.zeros(3, np.float32)}
    path, int8_path = export_profile(head, tmp_path / "emotion.onnx", model_folder, int8=True)
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = s.get_modelmeta().custom_metadata_map
    assert meta["sample_rate"] == "8000" and len(json.loads(meta["labels"])) == 8
    assert [i.name for i in s.get_inputs()][0] == "waveform" and s.get_outputs()[0].name == "probabilities"
    wave = _speechlike(2, 2.0, seed=9)
    emo, sent, feats = s.run(None, {"waveform": wave})
    ref_feats = pooled(WhisperEncoder.load(model_folder).hidden_states(log_mel(wave), layers=2))
    ref_emo, ref_sent = head_probabilities(head, ref_feats)
    np.testing.assert_allclose(emo, ref_emo, atol=2e-3)
    np.testing.assert_allclose(sent, ref_sent, atol=2e-3)
    assert feats.shape == (2, dim) and np.allclose(emo.sum(1), 1, atol=1e-5)
    stats = np.stack([feats, np.ones_like(feats)], axis=1).astype(np.float32)   # a leg whose mean is this window
    emo_leg = s.run(None, {"waveform": wave, "leg_stats": stats})[0]
    ref_leg = head_probabilities(head, ref_feats, stats)[0]
    np.testing.assert_allclose(emo_leg, ref_leg, atol=2e-3)
    assert np.abs(emo_leg - emo).max() > 0.01
    # the INT8 file keeps the optional input (quantisation would otherwise fold the default in)
    s8 = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in s8.get_inputs()] == ["waveform"]
    assert [i.name for i in s8.get_overridable_initializers()] == ["leg_stats"]
    emo8_leg = s8.run(None, {"waveform": wave, "leg_stats": stats})[0]
    assert np.abs(emo8_leg - s8.run(None, {"waveform": wave})[0]).max() > 0.01
