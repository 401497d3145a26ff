"""ONNX model wrapper: contract checks at load, explicit threads, one batched run for many windows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .audio import ANALYSIS_RATE_HZ

EMOTION_MODEL = "emotion.onnx"
SENTIMENT_MODEL = "sentiment.onnx"
SENTIMENT_LABELS = ("negative", "neutral", "positive")
# Past 8 windows a batch buys no speed (cnn2d: 0.274 ms/window at 8, 0.287 at 64), and onnxruntime's arena keeps
# the activations of the largest batch ever run: scoring 256 windows grew a fresh process's peak RSS by 53 MB in
# slices of 16 against 138 MB in slices of 64.
MAX_BATCH = 16


class ModelContractError(RuntimeError):
    pass


def default_model_dir() -> Path:
    return Path(str(resources.files("onnx_models")))


@dataclass(frozen=True)
class ModelInfo:
    path: str
    labels: tuple[str, ...]
    sample_rate: int
    version: str


class OnnxClassifier:
    """A waveform classifier that meets the shipped-model contract:
    input float32 [batch, samples] in [-1, 1] at ``sample_rate``; first output probabilities [batch, classes];
    ``metadata_props``: ``sample_rate`` and ``labels`` (JSON list)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            labels = tuple(json.loads(meta["labels"]))
            rate = int(meta["sample_rate"])
        except (KeyError, ValueError) as exc:
            raise ModelContractError(f"{path}: metadata_props must hold 'labels' (JSON list) and 'sample_rate'; {exc!r}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 2 or inputs[0].type != "tensor(float)":
            raise ModelContractError(f"{path}: expected one float32 input [batch, samples], got {[(i.name, i.type, i.shape) for i in inputs]}")
        if rate != ANALYSIS_RATE_HZ:
            raise ModelContractError(f"{path}: the workers analyse at {ANALYSIS_RATE_HZ} Hz, model wants {rate} Hz")
        self.input_name = inputs[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.info = ModelInfo(str(path), labels, rate, meta.get("model_version", "unknown"))

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """[batch, samples] float32 -> [batch, classes] probabilities."""
        if windows.ndim != 2 or windows.dtype != np.float32:
            raise ValueError(f"expected float32 [batch, samples], got {windows.dtype} {windows.shape}")
        if windows.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        probs = self.session.run([self.output_name], {self.input_name: windows})[0]
        if probs.shape != (windows.shape[0], len(self.labels)):
            raise ModelContractError(f"{self.info.path}: output shape {probs.shape}, expected {(windows.shape[0], len(self.labels))}")
        return probs


class Models:
    """The emotion and sentiment classifiers, loaded once per worker and warmed."""

    def __init__(self, model_dir: str | Path | None = None, threads: int = 1, warm_samples: int = 2 * ANALYSIS_RATE_HZ) -> None:
        root = Path(model_dir) if model_dir else default_model_dir()
        self.emotion = OnnxClassifier(root / EMOTION_MODEL, threads)
        self.sentiment = OnnxClassifier(root / SENTIMENT_MODEL, threads)
        if tuple(self.sentiment.labels) != SENTIMENT_LABELS:
            raise ModelContractError(f"sentiment labels must be {SENTIMENT_LABELS}, got {self.sentiment.labels}")
        warm = np.zeros((2, warm_samples), np.float32)
        self.emotion.predict(warm)
        self.sentiment.predict(warm)

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[batch, samples] -> (emotion probs [batch, E], sentiment score [batch] in -1..+1).

        Runs in slices of at most MAX_BATCH windows: past that, batching buys no speed, and onnxruntime's
        memory arena would keep the peak activation memory of the largest batch ever seen."""
        emo = np.empty((len(windows), len(self.emotion.labels)), np.float32)
        sent = np.empty((len(windows), 3), np.float32)
        for i in range(0, len(windows), MAX_BATCH):
            emo[i:i + MAX_BATCH] = self.emotion.predict(windows[i:i + MAX_BATCH])
            sent[i:i + MAX_BATCH] = self.sentiment.predict(windows[i:i + MAX_BATCH])
        return emo, sent[:, 2] - sent[:, 0]
