"""ONNX model wrapper: contract checks at load, explicit threads, one batched run for many windows."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

# onnxruntime's 1DS telemetry writes a device id and an SQLite database under ~/.cache/Microsoft/DeveloperTools
# as soon as the library is loaded; the workers write nothing to disk. Read at load time, so set before import.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime as ort  # noqa: E402

ort.disable_telemetry_events()

from stream.settings import Settings

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


# the shipped model folders, by ``CALLPULSE_MODEL_PROFILE``: under the onnx_models package
PROFILE_FOLDERS = {"default": ".", "light": "light"}


def default_model_dir(profile: str = "default") -> Path:
    if profile not in PROFILE_FOLDERS:
        raise ModelContractError(f"model profile must be one of {sorted(PROFILE_FOLDERS)}, got {profile!r}")
    return (Path(str(resources.files("onnx_models"))) / PROFILE_FOLDERS[profile]).resolve()


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
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.metadata = dict(meta)
        self.info = ModelInfo(str(path), labels, rate, meta.get("model_version", "unknown"))

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """[batch, samples] float32 -> [batch, classes] probabilities."""
        return self.predict_outputs(windows)[0]

    def predict_outputs(self, windows: np.ndarray, sentiment_output: str | None = None) -> list[np.ndarray]:
        """The probabilities and, if ``sentiment_output`` names a second output of sentiment probabilities
        [batch, 3], that output too, from one run."""
        if windows.ndim != 2 or windows.dtype != np.float32:
            raise ValueError(f"expected float32 [batch, samples], got {windows.dtype} {windows.shape}")
        names = self.output_names[:1] + ([sentiment_output] if sentiment_output else [])
        expected = [(windows.shape[0], len(self.labels)), (windows.shape[0], len(SENTIMENT_LABELS))][:len(names)]
        if windows.shape[0] == 0:
            return [np.zeros(shape, np.float32) for shape in expected]
        outs = self.session.run(names, {self.input_name: windows})
        for name, out, shape in zip(names, outs, expected):
            if out.shape != shape:
                raise ModelContractError(f"{self.info.path}: output {name!r} has shape {out.shape}, expected {shape}")
        return outs


def joint_sentiment_output(emotion: OnnxClassifier, sentiment: OnnxClassifier) -> str | None:
    """The name of emotion.onnx's second output that equals sentiment.onnx, or None. Only when both files declare
    the same trained weights (``weights_id``), so a sentiment.onnx swapped in on its own is always the one used."""
    name = emotion.metadata.get("sentiment_output")
    same_weights = emotion.metadata.get("weights_id") is not None and emotion.metadata.get("weights_id") == sentiment.metadata.get("weights_id")
    if not name or name not in emotion.output_names or not same_weights:
        return None
    try:
        labels = tuple(json.loads(emotion.metadata.get("sentiment_labels", "[]")))
    except ValueError:
        return None
    return name if labels == SENTIMENT_LABELS else None


class Models:
    """The emotion and sentiment classifiers, loaded once per worker and warmed. When emotion.onnx also carries the
    sentiment of the same weights (``joint_sentiment_output``), one run per window gives both, at half the cost."""

    def __init__(self, model_dir: str | Path | None = None, threads: int = 1, warm_samples: int = 2 * ANALYSIS_RATE_HZ) -> None:
        root = Path(model_dir) if model_dir else default_model_dir()
        self.emotion = OnnxClassifier(root / EMOTION_MODEL, threads)
        self.sentiment = OnnxClassifier(root / SENTIMENT_MODEL, threads)
        if tuple(self.sentiment.labels) != SENTIMENT_LABELS:
            raise ModelContractError(f"sentiment labels must be {SENTIMENT_LABELS}, got {self.sentiment.labels}")
        self.joint_output = joint_sentiment_output(self.emotion, self.sentiment)
        warm = np.zeros((2, warm_samples), np.float32)
        self.predict(warm)

    @classmethod
    def for_settings(cls, settings: Settings) -> "Models":
        """The models that ``settings`` choose: ``model_dir`` if set, else the shipped ``model_profile``."""
        return cls(settings.model_dir or default_model_dir(settings.model_profile), threads=settings.onnx_threads)

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[batch, samples] -> (emotion probs [batch, E], sentiment score [batch] in -1..+1).

        Runs in slices of at most MAX_BATCH windows: past that, batching buys no speed, and onnxruntime's
        memory arena would keep the peak activation memory of the largest batch ever seen."""
        emo = np.empty((len(windows), len(self.emotion.labels)), np.float32)
        sent = np.empty((len(windows), 3), np.float32)
        for i in range(0, len(windows), MAX_BATCH):
            batch = windows[i:i + MAX_BATCH]
            if self.joint_output:
                emo[i:i + MAX_BATCH], sent[i:i + MAX_BATCH] = self.emotion.predict_outputs(batch, self.joint_output)
            else:
                emo[i:i + MAX_BATCH] = self.emotion.predict(batch)
                sent[i:i + MAX_BATCH] = self.sentiment.predict(batch)
        return emo, sent[:, 2] - sent[:, 0]
