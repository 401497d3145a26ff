"""INT8 versions of the exported fp32 graphs (static quantisation, QDQ, per-channel weights), calibrated on 2 s windows
of training speakers only; and a graph's single seed network cut out of an ensemble. Deterministic: the same fp32
file and corpora give the same bytes.

    python -m onnx_models.quantize /tmp/fp32 --out onnx_models      # emotion.onnx and sentiment.onnx of /tmp/fp32, INT8

The log-mel front-end (a DFT as one Conv, a mel MatMul, log and per-band normalisation) stays fp32: the log and
the normalisation turn small absolute errors in quiet bands into large ones. Only the networks' Conv and Gemm
run as INT8 kernels (uint8 activations, int8 per-channel weights, which onnxruntime fuses into QLinearConv).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from .augment import telephone_band
from .data import DEFAULT_DATA, Clip, load_all, speaker_folds, windows_of
from .manifest import SHIPPED as MODELS, check_joint_sentiment, write_manifest

FRONTEND_PREFIX = "/model/frontend/"       # node names of the shared front-end in every exported graph
QUANTISED_OPS = ["Conv", "Gemm", "Relu"]
# the front-end, and each network's first 3x3 conv (one input channel: slower as INT8 than in fp32)
FP32_PREFIXES = (FRONTEND_PREFIX, "/model/image/image.0/")
CALIBRATION_FOLD = 0                       # calibrate on the speakers NOT in this fold: the fold-0 model's training set
CALIBRATION_WINDOWS = 512                  # one 2 s window per clip, half of them through the telephone channel
CALIBRATION_BATCH = 16
CALIBRATION_SEED = 0
RECIPE = ("int8 static QDQ: per-channel int8 weights, uint8 activations, MinMax calibration on 512 windows of training "
          "speakers; every Conv, Gemm and Relu but the log-mel front-end and each network's first conv (fp32)")


def calibration_windows(clips: list[Clip], exclude_speakers: set[str], n: int = CALIBRATION_WINDOWS,
                        seed: int = CALIBRATION_SEED) -> np.ndarray:
    """``n`` windows [n, samples] from clips of speakers outside ``exclude_speakers``, one random scored window per
    random clip; every other one through the fixed telephone channel (μ-law / A-law alternately)."""
    pool = [c for c in clips if c.speaker not in exclude_speakers]
    if len(pool) < n:
        raise ValueError(f"{n} calibration windows need as many clips of training speakers, found {len(pool)}")
    rng = np.random.default_rng(seed)
    out = []
    for k, i in enumerate(rng.choice(len(pool), n, replace=False)):
        audio = pool[int(i)].audio
        if k % 2:
            audio = telephone_band(audio, "mulaw" if k % 4 == 1 else "alaw")
        wins = windows_of(audio)
        out.append(wins[int(rng.integers(0, len(wins)))])
    return np.stack(out).astype(np.float32)


class _Windows(CalibrationDataReader):
    def __init__(self, windows: np.ndarray, input_name: str) -> None:
        self.batches = iter([{input_name: windows[i:i + CALIBRATION_BATCH]} for i in range(0, len(windows), CALIBRATION_BATCH)])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def quantise(src: Path, dst: Path, windows: np.ndarray, per_channel: bool = True, fp32_prefixes: tuple[str, ...] = FP32_PREFIXES,
             method: CalibrationMethod = CalibrationMethod.MinMax, ops: list[str] = QUANTISED_OPS,
             fmt: QuantFormat = QuantFormat.QDQ) -> None:
    """INT8 copy of ``src`` at ``dst``, its metadata kept; nodes whose names start with ``fp32_prefixes`` stay fp32."""
    model = onnx.load(str(src))
    excluded = [n.name for n in model.graph.node if n.name.startswith(fp32_prefixes)]
    with tempfile.TemporaryDirectory() as tmp:
        # the calibrator writes an augmented copy of the model next to this path
        work = Path(tmp) / src.name
        onnx.save(model, str(work))
        quantize_static(str(work), str(dst), _Windows(windows, model.graph.input[0].name), quant_format=fmt,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
                        op_types_to_quantize=QUANTISED_OPS, nodes_to_exclude=excluded, calibrate_method=method,
                        extra_options={"CalibTensorRangeSymmetric": False})


def mark(path: Path, version: str, recipe: str = RECIPE) -> None:
    """Set ``model_version`` and derive ``weights_id`` from the fp32 one and the recipe, so emotion.onnx and
    sentiment.onnx quantised together still declare the same weights and an fp32 file never matches an INT8 one."""
    m = onnx.load(str(path))
    meta = {e.key: e.value for e in m.metadata_props}
    meta["model_version"] = version
    meta["quantisation"] = recipe
    meta["weights_id"] = hashlib.sha256(f"{meta.get('weights_id', '')}|{recipe}".encode()).hexdigest()[:16]
    onnx.helper.set_model_props(m, meta)
    onnx.save(m, str(path))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path, help="folder with the fp32 emotion.onnx and sentiment.onnx")
    p.add_argument("--out", type=Path, required=True, help="folder for the INT8 files and their manifest.json")
    p.add_argument("--version", default=None, help="model_version to write (default: the fp32 one + '-int8')")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = p.parse_args(argv)
    if args.src.resolve() == args.out.resolve():
        raise SystemExit("--out must differ from the fp32 folder: the INT8 files would overwrite their source")
    clips = load_all(args.data)
    held_out = speaker_folds(clips)[CALIBRATION_FOLD]
    windows = calibration_windows(clips, held_out)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        quantise(args.src / name, args.out / name, windows)
        src_meta = {e.key: e.value for e in onnx.load(str(args.src / name)).metadata_props}
        mark(args.out / name, args.version or src_meta.get("model_version", "unknown") + "-int8")
    print(f"emotion.onnx's sentiment output against sentiment.onnx: {check_joint_sentiment(args.out):.1e}")
    print(json.dumps({"calibration": {"windows": len(windows), "speakers_excluded": sorted(held_out)},
                      "manifest": write_manifest(args.out)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
