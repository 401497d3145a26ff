"""Cost of Whisper-based ONNX graphs on one core: milliseconds per 2 s window, batch 1 and batch 32, fp32 and
dynamic INT8, as wall time and as this process's CPU time (on a shared machine the CPU time is the fairer figure;
the load average is recorded beside them).

    nice -n 15 python -m onnx_models.whisper_cost /work/feat/accurate/whisper_accurate.onnx /work/feat/accurate/whisper_accurate.int8.onnx --out onnx_models/reports/whisper_cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from .cost import WINDOW, session

BATCHES = (1, 32)


def timed(path: Path, batch: int, seconds: float) -> dict:
    s = session(path)
    feed = {"waveform": np.random.default_rng(0).normal(0, 0.1, (batch, WINDOW)).astype(np.float32)}
    s.run(None, feed)
    n, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        s.run(None, feed)
        n += batch
    return {"wall_ms": round((time.perf_counter() - wall) / n * 1000, 2), "cpu_ms": round((time.process_time() - cpu) / n * 1000, 2),
            "windows": n}


def measure(path: Path, seconds: float) -> dict:
    return {"bytes": path.stat().st_size, **{f"batch{b}": timed(path, b, seconds) for b in BATCHES},
            "load_average_1min": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", type=Path, nargs="+")
    p.add_argument("--int8", action="store_true", help="also quantise each (dynamic INT8 weights) and time that")
    p.add_argument("--seconds", type=float, default=5.0, help="timing per model and batch size")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    res = json.loads(args.out.read_text()) if args.out.exists() else {}
    for path in args.models:
        res[path.name] = measure(path, args.seconds)
        if args.int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic
            q = path.with_suffix(".int8.onnx")
            if not q.exists():
                quantize_dynamic(str(path), str(q), weight_type=QuantType.QInt8)
            res[q.name] = measure(q, args.seconds)
        print(json.dumps({k: v for k, v in res.items() if k.startswith(path.stem)}, indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
