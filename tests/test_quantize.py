"""The INT8 quantiser: what it quantises and what it leaves fp32, that it is deterministic and close to its fp32
source, that calibration reads training speakers only, and that the shipped files declare their quantisation."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

onnx = pytest.importorskip("onnx", reason="the quantiser needs onnx (test extra)")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from onnx_models.data import Clip  # noqa: E402
from onnx_models.quantize import FRONTEND_PREFIX, calibration_windows, mark, quantise  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "onnx_models"
SAMPLES = 1600


def _toy_graph(path: Path) -> None:
    """A waveform graph shaped like the shipped ones: a front-end conv, a first conv, a body conv, pooling, a head."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("fe_w", rng.normal(0, 0.3, (8, 1, 32))), ("img0_w", rng.normal(0, 0.3, (8, 8, 3))),
        ("body_w", rng.normal(0, 0.3, (16, 8, 3))), ("head_w", rng.normal(0, 0.3, (16, 4))), ("head_b", np.zeros(4)))]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    nodes = [
        helper.make_node("Unsqueeze", ["waveform", "axis1"], ["x1"], name=FRONTEND_PREFIX + "Unsqueeze"),
        helper.make_node("Conv", ["x1", "fe_w"], ["fe"], name=FRONTEND_PREFIX + "Conv", strides=[16]),
        helper.make_node("Conv", ["fe", "img0_w"], ["c0"], name="/model/image/image.0/image.0.0/Conv", pads=[1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="/model/image/image.0/image.0.2/Relu"),
        helper.make_node("Conv", ["r0", "body_w"], ["c1"], name="/model/body/body.0/body.0.0/Conv", pads=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="/model/body/body.0/body.0.2/Relu"),
        helper.make_node("ReduceMean", ["r1"], ["pooled"], name="/model/pool/ReduceMean", axes=[2], keepdims=0),
        helper.make_node("Gemm", ["pooled", "head_w", "head_b"], ["logits"], name="/model/emotion/Gemm"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="/Softmax", axis=1),
    ]
    graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (("weights_id", "abc"), ("model_version", "0.0.1"), ("labels", json.dumps(list("abcd"))), ("sample_rate", "8000")):
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(model, str(path))


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"waveform": x})[0]


def _waves(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLES) / 8000
    tones = np.sin(2 * np.pi * rng.uniform(100, 3000, (n, 1)) * t) * rng.uniform(0.05, 0.5, (n, 1))
    return (tones + rng.normal(0, 0.02, (n, SAMPLES))).astype(np.float32)


def test_networks_become_int8_the_front_end_and_first_conv_stay_fp32_and_the_output_barely_moves(tmp_path):
    src, a, b = tmp_path / "fp32.onnx", tmp_path / "a.onnx", tmp_path / "b.onnx"
    _toy_graph(src)
    calib = _waves(1, 64)
    quantise(src, a, calib)
    quantise(src, b, calib)
    assert a.read_bytes() == b.read_bytes()                       # deterministic
    g = onnx.load(str(a)).graph
    produced_by = {o: n for n in g.node for o in n.output}
    inits = {i.name: i for i in g.initializer}

    def weight_is_int8(conv_name: str) -> bool:
        (conv,) = [n for n in g.node if n.name == conv_name]
        dq = produced_by.get(conv.input[1])
        return dq is not None and dq.op_type == "DequantizeLinear" and inits[dq.input[0]].data_type == TensorProto.INT8
    assert weight_is_int8("/model/body/body.0/body.0.0/Conv")
    body_dq = produced_by[[n for n in g.node if n.name == "/model/body/body.0/body.0.0/Conv"][0].input[1]]
    assert len(numpy_helper.to_array(inits[body_dq.input[1]])) == 16   # one scale per output channel
    assert not weight_is_int8(FRONTEND_PREFIX + "Conv") and not weight_is_int8("/model/image/image.0/image.0.0/Conv")
    x = _waves(2, 32)
    fp32, int8 = _run(src, x), _run(a, x)
    assert np.abs(fp32 - int8).max() < 0.05 and (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.9
    assert not np.allclose(fp32, int8, atol=1e-7)                 # it did quantise


def test_mark_gives_quantised_files_of_one_source_one_new_weights_id(tmp_path):
    src = tmp_path / "fp32.onnx"
    _toy_graph(src)
    ids = []
    for name in ("e.onnx", "s.onnx"):
        quantise(src, tmp_path / name, _waves(1, 16))
        mark(tmp_path / name, "9.9.9")
        meta = {e.key: e.value for e in onnx.load(str(tmp_path / name)).metadata_props}
        assert meta["model_version"] == "9.9.9" and "int8" in meta["quantisation"] and meta["labels"] == json.dumps(list("abcd"))
        ids.append(meta["weights_id"])
    assert ids[0] == ids[1] != "abc"


def test_calibration_reads_only_training_speakers():
    rng = np.random.default_rng(3)
    clips = [Clip("ravdess", f"s{i % 4}", "f", "angry", (rng.normal(0, 0.9 if i % 4 == 0 else 0.01, 24000)).clip(-1, 1).astype(np.float32))
             for i in range(40)]
    w = calibration_windows(clips, {"s0"}, n=24)
    assert w.shape == (24, 16000) and np.abs(w).max() < 0.2        # no window of the loud held-out speaker s0
    with pytest.raises(ValueError, match="calibration windows"):
        calibration_windows(clips, {"s0"}, n=31)


def test_the_shipped_files_declare_their_quantisation_in_metadata_and_manifest():
    manifest = json.loads((ROOT / "manifest.json").read_text())
    for name in ("emotion.onnx", "sentiment.onnx"):
        meta = {e.key: e.value for e in onnx.load(str(ROOT / name)).metadata_props}
        assert meta["quantisation"] == manifest[name]["quantisation"] and meta["model_version"] == manifest[name]["model_version"]
        assert any(n.op_type == "DequantizeLinear" for n in onnx.load(str(ROOT / name)).graph.node)
