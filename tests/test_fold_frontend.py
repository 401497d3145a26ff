"""The folded log-mel front-end (onnx_models/fold_frontend.py): it computes what the exported Conv front-end computes,
refuses kernels it cannot fold, and the shipped graphs carry it and still give the training code's log-mels."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

onnx = pytest.importorskip("onnx", reason="the rewrite needs onnx (test extra)")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from onnx_models.dsp import HOP, LOG_FLOOR, N_FFT, N_MELS, dft_basis, mel_filterbank  # noqa: E402
from onnx_models.fold_frontend import FOLD_PREFIX, fold, folded_weights  # noqa: E402
from onnx_models.quantize import FRONTEND_PREFIX  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] / "onnx_models"
LENGTHS = (N_FFT, N_FFT + 1, N_FFT + HOP - 1, N_FFT + HOP, 12345, 16000)


def _conv_front_end() -> onnx.ModelProto:
    """The exported front-end's shape: Unsqueeze, the DFT Conv, the power of the cos and sin halves, the mel MatMul,
    and a log after it that must keep reading the same tensor."""
    bins = N_FFT // 2 + 1
    inits = [numpy_helper.from_array(dft_basis(), "basis"), numpy_helper.from_array(mel_filterbank(), "mel")]
    inits += [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
              (("axis1", [1]), ("zero", [0]), ("bins", [bins]), ("all", [2 * bins]))]
    inits += [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("two", 2.0), ("floor", LOG_FLOOR))]
    p = FRONTEND_PREFIX
    nodes = [helper.make_node("Unsqueeze", ["waveform", "axis1"], ["x1"], name=p + "Unsqueeze"),
             helper.make_node("Conv", ["x1", "basis"], ["spec"], name=p + "Conv", strides=[HOP]),
             helper.make_node("Slice", ["spec", "zero", "bins", "axis1"], ["re"], name=p + "Slice"),
             helper.make_node("Slice", ["spec", "bins", "all", "axis1"], ["im"], name=p + "Slice_1"),
             helper.make_node("Pow", ["re", "two"], ["re2"], name=p + "Pow"),
             helper.make_node("Pow", ["im", "two"], ["im2"], name=p + "Pow_1"),
             helper.make_node("Add", ["re2", "im2"], ["power"], name=p + "Add"),
             helper.make_node("MatMul", ["mel", "power"], ["mel_power"], name=p + "MatMul"),
             helper.make_node("Add", ["mel_power", "floor"], ["floored"], name=p + "Add_1"),
             helper.make_node("Log", ["floored"], ["logmel"], name=p + "Log")]
    graph = helper.make_graph(nodes, "front_end", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])],
                              [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, ["batch", N_MELS, "frames"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray, output: str | None = None) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([output] if output else None, {"waveform": x})[0]


def _numpy_log_mel(x: np.ndarray) -> np.ndarray:
    """The training front-end (frontend.LogMel) in numpy with an FFT: per-band normalised log-mel [batch, mels, frames]."""
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), N_FFT, axis=1)[:, ::HOP]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    power = np.abs(np.fft.rfft(frames * window, axis=2)) ** 2                       # [batch, frames, bins]
    logmel = np.log(np.einsum("mb,nfb->nmf", mel_filterbank().astype(np.float64), power) + LOG_FLOOR)
    mean = logmel.mean(axis=2, keepdims=True)
    return (logmel - mean) / np.sqrt(((logmel - mean) ** 2).mean(axis=2, keepdims=True) + 1e-5)


def test_folded_weights_rebuild_the_kernels_and_halve_the_taps():
    w = folded_weights(dft_basis(), mel_filterbank())
    used = int((mel_filterbank().sum(axis=0) > 0).sum())
    assert w["cos"].shape == (N_FFT // 2, used) and w["sin"].shape == (N_FFT // 2 - 1, used)
    assert w["mel"].shape == (used, mel_filterbank().shape[0])
    assert w["cos"].size + w["sin"].size < dft_basis().size / 2


def test_folded_weights_refuse_kernels_without_the_symmetry():
    basis = dft_basis()
    rectangular = basis.copy()
    rectangular[:, :, 0] = 1.0              # a window that is not zero at n = 0 breaks the fold
    with pytest.raises(ValueError, match="cannot fold"):
        folded_weights(rectangular, mel_filterbank())
    with pytest.raises(ValueError, match="do not match"):
        folded_weights(basis[:-2], mel_filterbank())


@pytest.mark.parametrize("length", LENGTHS)
def test_fold_computes_what_the_conv_front_end_computes(length):
    x = np.random.default_rng(length).normal(0, 0.1, (3, length)).astype(np.float32)
    reference = _run(_conv_front_end(), x)
    folded = fold(_conv_front_end())
    assert not any(n.op_type == "Conv" for n in folded.graph.node)
    assert any(n.name.startswith(FOLD_PREFIX) for n in folded.graph.node)
    got = _run(folded, x)
    assert got.shape == reference.shape == (3, mel_filterbank().shape[0], (length - N_FFT) // HOP + 1)
    assert np.abs(got - reference).max() < 1e-4


def test_fold_refuses_a_graph_that_reads_the_spectrum_elsewhere():
    model = _conv_front_end()
    model.graph.output.append(helper.make_tensor_value_info("power", TensorProto.FLOAT, None))
    model.graph.node.append(helper.make_node("Identity", ["power"], ["power_copy"], name="reader"))
    with pytest.raises(ValueError, match="intermediate"):
        fold(model)


@pytest.mark.parametrize("name", ["emotion.onnx", "sentiment.onnx"])
def test_shipped_graphs_carry_the_folded_front_end_and_give_the_training_log_mels(name):
    model = onnx.load(str(ROOT / name))
    assert not [n for n in model.graph.node if n.op_type == "Conv" and n.name.startswith(FRONTEND_PREFIX)]
    normalised = "/model/frontend/Div_output_0"    # the front-end's last tensor, which the networks read
    model.graph.output.append(helper.make_tensor_value_info(normalised, TensorProto.FLOAT, None))
    x = np.random.default_rng(7).normal(0, 0.1, (4, 16000)).astype(np.float32)
    assert np.abs(_run(model, x, normalised) - _numpy_log_mel(x)).max() < 1e-3
