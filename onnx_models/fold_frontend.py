"""The shipped graphs' log-mel front-end, rewritten to do the same arithmetic in half the multiplications.

    python -m onnx_models.fold_frontend onnx_models --out /tmp/folded --version 0.6.2

The exported front-end computes the STFT as one strided Conv with 258 kernels of 256 taps (Hann-windowed cos and
sin rows), then the power and a 40-band mel MatMul. The Hann window is symmetric and zero at n = 0, so every cos row
takes the same value at n and N - n, and every sin row the opposite one. Adding and subtracting the two halves of
each frame first (x[n] + x[N-n], x[n] - x[N-n]) leaves 128 + 127 taps per bin instead of 2 x 256, and the bins that
no mel filter reads (below 60 Hz and above 3900 Hz) are dropped. Framing is two reshapes of the waveform, no copy
per tap. The networks, their weights and the normalisation after the mel MatMul are untouched; only the rounding
of the sums changes, so the rewritten file is checked against its source (`int8_check fidelity`), not retrained.

The folded weights are derived from the graph's own DFT and mel initialisers, and the rewrite refuses a graph whose
kernels do not have the symmetry it relies on (it rebuilds the full kernels from the folded ones and compares).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .manifest import rewrite_folder
from .quantize import FRONTEND_PREFIX

FOLD_PREFIX = FRONTEND_PREFIX + "fold/"
RECIPE_NOTE = "front-end folded (symmetric DFT halves, unused bins dropped; onnx_models/fold_frontend.py)"


def _frontend_nodes(graph: onnx.GraphProto) -> tuple[onnx.NodeProto, onnx.NodeProto]:
    """The front-end's DFT Conv and its mel MatMul, found by shape of the graph, not by a fixed node list."""
    convs = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith(FRONTEND_PREFIX)]
    mels = [n for n in graph.node if n.op_type == "MatMul" and n.name.startswith(FRONTEND_PREFIX)]
    if len(convs) != 1 or len(mels) != 1:
        raise ValueError(f"expected one front-end Conv and one mel MatMul under {FRONTEND_PREFIX}, "
                         f"found {len(convs)} and {len(mels)}")
    return convs[0], mels[0]


def folded_weights(basis: np.ndarray, mel: np.ndarray) -> dict[str, np.ndarray]:
    """From the Conv's [2B, 1, N] cos/sin kernels and the [M, B] mel matrix: the weights of the folded front-end.

    cos: [128, U] over (x[N/2], x[n] + x[N-n] for n = 1..N/2-1); sin: [127, U] over x[n] - x[N-n]; mel: [U, M];
    U = the bins that some mel filter reads. Raises if the kernels lack the symmetry the fold needs."""
    k = basis[:, 0, :].astype(np.float64)
    bins, n_fft = mel.shape[1], k.shape[1]
    half = n_fft // 2
    if k.shape[0] != 2 * bins or n_fft % 2:
        raise ValueError(f"DFT kernels {basis.shape} do not match a mel matrix of {bins} bins")
    cos, sin = k[:bins], k[bins:]
    used = np.flatnonzero(np.abs(mel).sum(axis=0) > 0)
    w_cos = np.concatenate([cos[:, half:half + 1], cos[:, 1:half]], axis=1).T[:, used]
    w_sin = sin[:, 1:half].T[:, used]
    # rebuild the used bins' full kernels from the folded ones: the fold is exact only if this gives them back
    rebuilt_cos = np.zeros((len(used), n_fft))
    rebuilt_cos[:, half] = w_cos[0]
    rebuilt_cos[:, 1:half] = w_cos[1:].T
    rebuilt_cos[:, half + 1:] = w_cos[1:].T[:, ::-1]
    rebuilt_sin = np.zeros((len(used), n_fft))
    rebuilt_sin[:, 1:half] = w_sin.T
    rebuilt_sin[:, half + 1:] = -w_sin.T[:, ::-1]
    scale = np.abs(k).max()
    if not (np.allclose(rebuilt_cos, cos[used], atol=1e-6 * scale) and np.allclose(rebuilt_sin, sin[used], atol=1e-6 * scale)):
        raise ValueError("the DFT kernels are not symmetric as a zero-ended symmetric window makes them: cannot fold")
    return {"cos": w_cos.astype(np.float32), "sin": w_sin.astype(np.float32),
            "mel": np.ascontiguousarray(mel[:, used].T).astype(np.float32)}


def _ancestors(graph: onnx.GraphProto, output: str, stop: set[str]) -> list[onnx.NodeProto]:
    producer = {o: n for n in graph.node for o in n.output}
    seen: dict[int, onnx.NodeProto] = {}
    todo = [output]
    while todo:
        name = todo.pop()
        node = producer.get(name)
        if node is None or name in stop or id(node) in seen:
            continue
        seen[id(node)] = node
        todo.extend(node.input)
    return list(seen.values())


def fold(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its front-end's DFT Conv, power and mel MatMul replaced by the folded version (in place)."""
    g = model.graph
    conv, mel_mm = _frontend_nodes(g)
    inits = {i.name: i for i in g.initializer}
    basis = numpy_helper.to_array(inits[conv.input[1]])
    mel = numpy_helper.to_array(inits[mel_mm.input[0]])
    hop = next(a.ints[0] for a in conv.attribute if a.name == "strides")
    n_fft, half = basis.shape[2], basis.shape[2] // 2
    if not hop < n_fft <= 2 * hop:
        raise ValueError(f"the framing below needs hop < n_fft <= 2 * hop, got hop {hop} and n_fft {n_fft}")
    w = folded_weights(basis, mel)
    wave = g.input[0].name
    out = mel_mm.output[0]                                # [batch, mels, frames], read by the log and the rest
    old = _ancestors(g, out, stop={wave})
    old_ids = {id(n) for n in old}
    outputs_of_old = {o for n in old for o in n.output}
    if any(i in outputs_of_old - {out} for n in g.node if id(n) not in old_ids for i in n.input):
        raise ValueError("a node outside the front-end reads one of its intermediate tensors: cannot replace it")

    p = FOLD_PREFIX
    consts = {"zero": [0], "one": [1], "two": [2], "hop": [hop], "n_fft": [n_fft], "minus_one": [-1],
              "head": [n_fft - hop], "half": [half], "half_plus_one": [half + 1], "last": [n_fft - 1]}
    new_inits = [numpy_helper.from_array(np.array(v, np.int64), p + k) for k, v in consts.items()]
    new_inits += [numpy_helper.from_array(w[k], p + "w_" + k) for k in ("cos", "sin", "mel")]

    def c(name: str) -> str:
        return p + name

    def node(op: str, inputs: list[str], output: str, **attrs) -> onnx.NodeProto:
        return helper.make_node(op, inputs, [c(output)], name=c(output), **attrs)

    nodes = [
        # frames = (L - n_fft) // hop + 1, as the Conv counts them
        helper.make_node("Shape", [wave], [c("shape")], name=c("shape")),
        node("Gather", [c("shape"), c("one")], "length", axis=0),
        node("Sub", [c("length"), c("n_fft")], "tail"),
        node("Div", [c("tail"), c("hop")], "hops"),
        node("Add", [c("hops"), c("one")], "frames"),
        node("Mul", [c("frames"), c("hop")], "span"),
        node("Add", [c("span"), c("head")], "span_end"),
        node("Concat", [c("minus_one"), c("frames"), c("hop")], "frame_shape", axis=0),
        # frame j = x[hop*j : hop*j + head] followed by x[hop*j + head : hop*j + n_fft] (head = n_fft - hop)
        node("Slice", [wave, c("zero"), c("span"), c("one")], "first_span"),
        node("Reshape", [c("first_span"), c("frame_shape")], "first_blocks"),
        node("Slice", [c("first_blocks"), c("zero"), c("head"), c("two")], "frame_heads"),
        node("Slice", [wave, c("head"), c("span_end"), c("one")], "second_span"),
        node("Reshape", [c("second_span"), c("frame_shape")], "frame_tails"),
        node("Concat", [c("frame_heads"), c("frame_tails")], "frames_", axis=2),         # [batch, frames, n_fft]
        node("Slice", [c("frames_"), c("one"), c("half"), c("two")], "rising"),           # x[1 .. N/2-1]
        node("Slice", [c("frames_"), c("last"), c("half"), c("two"), c("minus_one")], "falling"),  # x[N-1 .. N/2+1]
        node("Slice", [c("frames_"), c("half"), c("half_plus_one"), c("two")], "middle"),  # x[N/2]
        node("Add", [c("rising"), c("falling")], "even_part"),
        node("Sub", [c("rising"), c("falling")], "odd_part"),
        node("Concat", [c("middle"), c("even_part")], "cos_input", axis=2),
        node("MatMul", [c("cos_input"), c("w_cos")], "real"),
        node("MatMul", [c("odd_part"), c("w_sin")], "imaginary"),
        node("Mul", [c("real"), c("real")], "real_squared"),
        node("Mul", [c("imaginary"), c("imaginary")], "imaginary_squared"),
        node("Add", [c("real_squared"), c("imaginary_squared")], "power"),                # [batch, frames, bins used]
        node("MatMul", [c("power"), c("w_mel")], "mel_by_frame"),
        helper.make_node("Transpose", [c("mel_by_frame")], [out], name=c("mel"), perm=[0, 2, 1]),
    ]
    kept = [n for n in g.node if id(n) not in old_ids]
    first_reader = next(i for i, n in enumerate(kept) if out in n.input)
    del g.node[:]
    g.node.extend(kept[:first_reader] + nodes + kept[first_reader:])
    g.initializer.extend(new_inits)
    used = {i for n in g.node for i in n.input}
    live = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(live)
    onnx.checker.check_model(model)
    return model


def mark(model: onnx.ModelProto, version: str) -> None:
    """New ``model_version`` and a note in ``quantisation``; ``weights_id`` stays, as the weights are the same."""
    meta = {e.key: e.value for e in model.metadata_props}
    meta["model_version"] = version
    meta["quantisation"] = f"{meta['quantisation']}; {RECIPE_NOTE}" if meta.get("quantisation") else RECIPE_NOTE
    helper.set_model_props(model, meta)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="folder with emotion.onnx and sentiment.onnx")
    p.add_argument("--out", type=Path, required=True, help="folder for the rewritten files and their manifest.json")
    p.add_argument("--version", required=True, help="model_version to write")
    args = p.parse_args(argv)

    def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
        model = fold(model)
        mark(model, args.version)
        return model

    worst, manifest = rewrite_folder(args.src, args.out, rewrite)
    print(f"emotion.onnx's sentiment output against sentiment.onnx: {worst:.1e}")
    print(json.dumps(manifest, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
