"""A model folder the workers load (``--model-dir``, ``CALLPULSE_MODEL_DIR``) from one ONNX file that computes both
heads, such as the accurate profile (`whisper_export profile`). No torch.

    python -m onnx_models.profile_dir /work/feat/accurate_none/whisper_accurate.onnx --out /work/models/accurate

The workers read ``emotion.onnx`` (first output: emotion probabilities) and ``sentiment.onnx`` (first output:
sentiment probabilities). Both are written from the one graph, the second with its outputs reordered, and both get
the same ``weights_id``, so `workers.inference.Models` runs the graph once per window for both heads
(``joint_sentiment_output``). ``manifest.json`` records each file's SHA-256 and the source.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import onnx

from .labels import EMOTIONS, SENTIMENTS

EMOTION_FILE = "emotion.onnx"
SENTIMENT_FILE = "sentiment.onnx"
SENTIMENT_OUTPUT = "sentiment_probabilities"


def _set_meta(model: onnx.ModelProto, values: dict[str, str]) -> None:
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        p = model.metadata_props.add()
        p.key, p.value = key, value


def write_model_dir(source: Path, out: Path, version: str) -> dict:
    """``source``: an ONNX file with one float32 [batch, samples] input (optional inputs with defaults aside),
    first output emotion probabilities [batch, 8] and an output ``sentiment_probabilities`` [batch, 3]."""
    model = onnx.load(str(source))
    outputs = [o.name for o in model.graph.output]
    if SENTIMENT_OUTPUT not in outputs:
        raise ValueError(f"{source}: needs an output {SENTIMENT_OUTPUT!r} [batch, 3] besides the emotion output; it has {outputs}")
    meta = {p.key: p.value for p in model.metadata_props}
    if json.loads(meta.get("labels", "[]")) != list(EMOTIONS):
        raise ValueError(f"{source}: metadata 'labels' must be {list(EMOTIONS)}, got {meta.get('labels')}")
    weights_id = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    common = {"weights_id": weights_id, "model_version": version, "sentiment_output": SENTIMENT_OUTPUT,
              "sentiment_labels": json.dumps(list(SENTIMENTS))}
    out.mkdir(parents=True, exist_ok=True)
    _set_meta(model, {**common, "labels": json.dumps(list(EMOTIONS))})
    onnx.save(model, str(out / EMOTION_FILE))
    first = [o for o in model.graph.output if o.name == SENTIMENT_OUTPUT]
    rest = [o for o in model.graph.output if o.name != SENTIMENT_OUTPUT]
    del model.graph.output[:]
    model.graph.output.extend(first + rest)
    _set_meta(model, {**common, "labels": json.dumps(list(SENTIMENTS))})
    onnx.save(model, str(out / SENTIMENT_FILE))
    manifest = {name: {"sha256": hashlib.sha256((out / name).read_bytes()).hexdigest(), "bytes": (out / name).stat().st_size,
                       "model_version": version, "source": str(source), "weights_id": weights_id}
                for name in (EMOTION_FILE, SENTIMENT_FILE)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--version", default="accurate-0.1")
    args = p.parse_args(argv)
    try:
        manifest = write_model_dir(args.source, args.out, args.version)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    print(json.dumps(manifest, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
