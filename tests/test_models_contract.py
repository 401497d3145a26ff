"""The shipped ONNX models meet the published contract, with onnxruntime alone (no torch)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

ROOT = Path(__file__).resolve().parents[1] / "onnx_models"
FOLDERS = [ROOT, ROOT / "light"]   # the default profile and the light one (CALLPULSE_MODEL_PROFILE)
EMOTION_NAMES = {"angry", "bored", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised"}


def session(name, folder=ROOT):
    return ort.InferenceSession(str(folder / name), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("folder", FOLDERS, ids=["default", "light"])
@pytest.mark.parametrize("name,expected", [("emotion.onnx", None), ("sentiment.onnx", ["negative", "neutral", "positive"])])
def test_contract(name, expected, folder):
    s = session(name, folder)
    meta = s.get_modelmeta().custom_metadata_map
    labels = json.loads(meta["labels"])
    rate = int(meta["sample_rate"])
    assert rate in (8000, 16000)
    if expected:
        assert labels == expected
    else:
        assert set(labels) <= EMOTION_NAMES and len(labels) >= 6
    (inp,) = s.get_inputs()
    assert inp.type == "tensor(float)" and len(inp.shape) == 2
    rng = np.random.default_rng(0)
    for seconds in (1.0, 2.0, 8.0):
        for batch in (1, 5):
            x = np.clip(rng.normal(0, 0.1, (batch, int(seconds * rate))), -1, 1).astype(np.float32)
            probs = s.run(None, {inp.name: x})[0]
            assert probs.shape == (batch, len(labels)) and probs.dtype == np.float32
            assert np.allclose(probs.sum(1), 1.0, atol=1e-4) and (probs >= 0).all()


def test_batched_equals_unbatched():
    s = session("emotion.onnx")
    x = np.random.default_rng(1).normal(0, 0.1, (4, 16000)).astype(np.float32)
    together = s.run(None, {"waveform": x})[0]
    alone = np.concatenate([s.run(None, {"waveform": x[i:i + 1]})[0] for i in range(4)])
    assert np.allclose(together, alone, atol=1e-5)


def test_the_models_are_not_constant():
    s = session("emotion.onnx")
    rng = np.random.default_rng(2)
    t = np.arange(16000) / 8000
    voiced = (0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    a = s.run(None, {"waveform": voiced[None]})[0]
    b = s.run(None, {"waveform": rng.normal(0, 0.3, (1, 16000)).astype(np.float32)})[0]
    assert np.abs(a - b).max() > 0.05


@pytest.mark.parametrize("folder", FOLDERS, ids=["default", "light"])
def test_manifest_matches_the_files(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, entry in manifest.items():
        data = (folder / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"] < 5_000_000


def test_front_end_parity_with_training_code():
    torch = pytest.importorskip("torch", reason="torch is a training extra")
    from onnx_models.frontend import LogMel
    # The exported graph embeds the front-end; check the first stage directly against the torch module by
    # exporting LogMel alone and comparing.
    import io
    buf = io.BytesIO()
    torch.onnx.export(LogMel(), (torch.zeros(1, 16000),), buf, input_names=["w"], output_names=["m"],
                      dynamic_axes={"w": {0: "b", 1: "n"}}, opset_version=17, dynamo=False)
    s = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).normal(0, 0.1, (2, 12345)).astype(np.float32)
    with torch.no_grad():
        ref = LogMel()(torch.from_numpy(x)).numpy()
    assert np.abs(s.run(None, {"w": x})[0] - ref).max() < 1e-3


def test_emotion_model_carries_the_same_sentiment_as_sentiment_onnx():
    emo, sent = session("emotion.onnx"), session("sentiment.onnx")
    meta_e, meta_s = emo.get_modelmeta().custom_metadata_map, sent.get_modelmeta().custom_metadata_map
    assert meta_e["weights_id"] == meta_s["weights_id"]
    assert json.loads(meta_e["sentiment_labels"]) == json.loads(meta_s["labels"])
    x = np.random.default_rng(4).normal(0, 0.1, (3, 16000)).astype(np.float32)
    joint = emo.run(None, {"waveform": x})
    assert [o.name for o in emo.get_outputs()][1] == meta_e["sentiment_output"]
    assert np.allclose(joint[1], sent.run(None, {"waveform": x})[0], atol=1e-5)


def test_workers_run_one_graph_for_both_heads_only_for_matching_weights():
    from types import SimpleNamespace

    from workers.inference import Models, joint_sentiment_output

    models = Models()
    assert models.joint_output == "sentiment_probabilities"
    x = np.random.default_rng(5).normal(0, 0.1, (20, 16000)).astype(np.float32)   # more than one MAX_BATCH slice
    emo, score = models.predict(x)
    p = session("sentiment.onnx").run(None, {"waveform": x})[0]
    assert np.allclose(score, p[:, 2] - p[:, 0], atol=1e-5)
    assert np.allclose(emo, session("emotion.onnx").run(None, {"waveform": x})[0], atol=1e-5)

    def fake(weights_id, outputs=("probabilities", "sentiment_probabilities")):
        meta = {"weights_id": weights_id, "sentiment_output": "sentiment_probabilities",
                "sentiment_labels": json.dumps(["negative", "neutral", "positive"])}
        return SimpleNamespace(metadata=meta, output_names=list(outputs))
    assert joint_sentiment_output(fake("a"), fake("a")) == "sentiment_probabilities"
    assert joint_sentiment_output(fake("a"), fake("b")) is None                      # a sentiment.onnx swapped in alone
    assert joint_sentiment_output(fake("a", ("probabilities",)), fake("a")) is None   # no second output
