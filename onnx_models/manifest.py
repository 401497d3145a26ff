"""manifest.json: the SHA-256, size, labels, rate, opset and version of each shipped ONNX file (and its quantisation,
where it has one). Written by `export` and by `quantize`; torch-free."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx

SHIPPED = ("emotion.onnx", "sentiment.onnx")


def write_manifest(out: Path) -> dict:
    manifest = {}
    for name in SHIPPED:
        p = out / name
        m = onnx.load(str(p))
        meta = {e.key: e.value for e in m.metadata_props}
        manifest[name] = {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size,
                          "labels": json.loads(meta["labels"]), "sample_rate": int(meta["sample_rate"]),
                          "opset": m.opset_import[0].version, "model_version": meta["model_version"]}
        if "quantisation" in meta:
            manifest[name]["quantisation"] = meta["quantisation"]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
