"""Whisper-base's audio encoder in numpy, from the CTranslate2 weights, exposing every layer (no torch).

Two 3-tap convolutions (the second with stride 2) with GELU, sinusoidal positions, then pre-norm transformer
blocks (self-attention, 2048-wide GELU MLP) and a final layer norm; the output of the last layer after that norm
is what CTranslate2's ``Whisper.encode`` returns. Works on any input length up to 30 s (3000 mel frames).

    layers = WhisperEncoder.load().hidden_states(log_mel(windows))   # [input, layer 1, ..., layer 6]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import erf

from .whisper_ct2 import read_model

LN_EPS = 1e-5
MAX_FRAMES = 3000           # Whisper's 30 s context in mel frames
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as Whisper uses."""
    return 0.5 * x * (1.0 + erf(x * _INV_SQRT2))


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * gamma + beta


def conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1) -> np.ndarray:
    """[B, C_in, T] * [C_out, C_in, 3] (padding 1) -> [B, T', C_out] (channels last, as the blocks want)."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    t_out = (x.shape[2] - 1) // stride + 1
    taps = [xp[:, :, k: k + stride * (t_out - 1) + 1: stride] for k in range(w.shape[2])]   # each [B, C_in, T']
    cols = np.concatenate(taps, axis=1).transpose(0, 2, 1)                                 # [B, T', 3 * C_in]
    return cols @ w.transpose(2, 1, 0).reshape(-1, w.shape[0]) + b


@dataclass
class Block:
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    qkv_w: np.ndarray       # [3 * d, d] fused query, key, value (key bias is zero in Whisper)
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray
    fc1_w: np.ndarray
    fc1_b: np.ndarray
    fc2_w: np.ndarray
    fc2_b: np.ndarray

    def __call__(self, x: np.ndarray, heads: int) -> np.ndarray:
        b, t, d = x.shape
        qkv = layer_norm(x, self.ln1_g, self.ln1_b) @ self.qkv_w.T + self.qkv_b
        q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3) for i in range(3))
        att = q @ k.transpose(0, 1, 3, 2) * (1.0 / math.sqrt(d // heads))
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
        x = x + ctx @ self.out_w.T + self.out_b
        h = gelu(layer_norm(x, self.ln2_g, self.ln2_b) @ self.fc1_w.T + self.fc1_b)
        return x + h @ self.fc2_w.T + self.fc2_b


class WhisperEncoder:
    """The encoder's weights as float32 numpy arrays and its forward pass."""

    def __init__(self, weights: dict[str, np.ndarray]):
        w = {k.removeprefix("encoder/"): v.astype(np.float32) for k, v in weights.items() if k.startswith("encoder/")}
        self.heads = int(weights["encoder/num_heads"])
        self.conv1 = (w["conv1/weight"], w["conv1/bias"])
        self.conv2 = (w["conv2/weight"], w["conv2/bias"])
        self.positions = w["position_encodings/encodings"]
        self.blocks = []
        for i in range(sum(1 for k in w if k.endswith("self_attention/linear_0/weight"))):
            p = f"layer_{i}/"
            self.blocks.append(Block(
                w[p + "self_attention/layer_norm/gamma"], w[p + "self_attention/layer_norm/beta"],
                w[p + "self_attention/linear_0/weight"], w[p + "self_attention/linear_0/bias"],
                w[p + "self_attention/linear_1/weight"], w[p + "self_attention/linear_1/bias"],
                w[p + "ffn/layer_norm/gamma"], w[p + "ffn/layer_norm/beta"],
                w[p + "ffn/linear_0/weight"], w[p + "ffn/linear_0/bias"],
                w[p + "ffn/linear_1/weight"], w[p + "ffn/linear_1/bias"]))
        self.ln_post = (w["layer_norm/gamma"], w["layer_norm/beta"])

    @classmethod
    def load(cls, model: Path | None = None) -> WhisperEncoder:
        """From a CTranslate2 model folder or model.bin (default: the pinned packages, via whisper_package)."""
        if model is None:
            from .whisper_package import model_dir
            model = model_dir()
        return cls(read_model(Path(model), prefix="encoder/")[1])

    def hidden_states(self, mel: np.ndarray, layers: int | None = None) -> list[np.ndarray]:
        """[B, 80, frames] log-mels -> [input embedding, block 1, ..., block n] each [B, frames // 2, 512]; the last
        with the final layer norm applied when all blocks run (CTranslate2's encoder output). ``layers``: stop after
        that many blocks (a truncated encoder; its last state is then the raw block output)."""
        if mel.shape[2] > MAX_FRAMES:
            raise ValueError(f"{mel.shape[2]} mel frames: Whisper's encoder takes at most {MAX_FRAMES} (30 s)")
        x = gelu(conv1d(mel.astype(np.float32), *self.conv1))
        x = gelu(conv1d(x.transpose(0, 2, 1), *self.conv2, stride=2))
        x = x + self.positions[: x.shape[1]]
        out = [x]
        n = len(self.blocks) if layers is None else layers
        for block in self.blocks[:n]:
            x = block(x, self.heads)
            out.append(x)
        if n == len(self.blocks):
            out[-1] = layer_norm(x, *self.ln_post)
        return out


def pooled(states: list[np.ndarray]) -> np.ndarray:
    """[B, layers, 2 * d]: each layer's mean and standard deviation over time."""
    return np.stack([np.concatenate([s.mean(1), s.std(1)], axis=-1) for s in states], axis=1)
