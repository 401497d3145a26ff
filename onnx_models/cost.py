"""Inference cost of the shipped models on one core, model size, and the INT8 check.

    python -m onnx_models.cost --out onnx_models/reports
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).parent
WINDOW = 16000


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def ms_per_window(s: ort.InferenceSession, batch: int, seconds: float = 3.0) -> float:
    x = np.random.default_rng(0).normal(0, 0.1, (batch, WINDOW)).astype(np.float32)
    name = s.get_inputs()[0].name
    s.run(None, {name: x})
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s.run(None, {name: x})
        n += batch
    return (time.perf_counter() - t0) / n * 1000


def int8_check(fold0: Path, out: dict) -> None:
    """Quantise the fold-0 model (dynamic INT8 weights) and score both versions on fold 0's held-out speakers."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .data import DEFAULT_DATA, load_all
    from .torch_predict import FOLD_LABEL_SETS, evaluate_model
    from .export import export_head, load_checkpoint
    from .labels import EMOTIONS

    model, ckpt = load_checkpoint(fold0)
    clips = [c for c in load_all(DEFAULT_DATA) if c.speaker in set(ckpt["held_out"])]
    with tempfile.TemporaryDirectory() as d:
        fp32, int8 = Path(d) / "e.onnx", Path(d) / "e8.onnx"
        export_head(model, 0, EMOTIONS, fp32, "fold 0", ckpt["arch"])
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        for name, path in (("fp32", fp32), ("int8", int8)):
            s = session(path)

            def as_model(x, s=s):
                p = s.run(None, {"waveform": x.numpy()})[0]
                logits = torch.from_numpy(np.log(np.maximum(p, 1e-9)))
                return logits, torch.zeros(len(p), 3)
            r = evaluate_model(as_model, clips, FOLD_LABEL_SETS)
            out[f"fold0_{name}"] = {k: v["clip"]["emotion"]["ua"] for k, v in r.items()}
            out[f"fold0_{name}_ms_batched"] = round(ms_per_window(s, 32), 3)
            out[f"fold0_{name}_bytes"] = path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "reports")
    p.add_argument("--fold0", type=Path, default=Path("artifacts/fold0_cnn2d.pt"))
    args = p.parse_args(argv)
    res: dict = {}
    for name in ("emotion.onnx", "sentiment.onnx"):
        s = session(HERE / name)
        res[name] = {"bytes": (HERE / name).stat().st_size, "ms_per_2s_window_batch1": round(ms_per_window(s, 1), 3),
                     "ms_per_2s_window_batch32": round(ms_per_window(s, 32), 3)}
    if args.fold0.exists():
        int8_check(args.fold0, res)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cost.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
