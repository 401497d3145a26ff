"""Whisper-base's audio encoder in PyTorch, converted from the CTranslate2 weights (training venv only: torch).

`state_dict_from_ct2` renames and splits CTranslate2's encoder variables into the state dict of openai-whisper's
``whisper.model.AudioEncoder`` (fused query/key/value split back, Whisper's bias-free key), so the weights load
there strictly; `EncoderLayers` is the same network with the same parameter names that takes any length up to
30 s (openai-whisper's asserts exactly 30 s), returns every layer, and can stop after its first k blocks, the
truncated encoder that `whisper_export` puts into ONNX.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .whisper_ct2 import read_model

N_MELS, N_CTX, N_STATE, N_HEAD, N_LAYER = 80, 1500, 512, 8, 6      # Whisper-base's encoder


def state_dict_from_ct2(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2 ``encoder/...`` arrays -> openai-whisper AudioEncoder state dict (float32)."""
    w = {k.removeprefix("encoder/"): np.asarray(v, np.float32) for k, v in weights.items() if k.startswith("encoder/")}
    sd = {"conv1.weight": w["conv1/weight"], "conv1.bias": w["conv1/bias"], "conv2.weight": w["conv2/weight"],
          "conv2.bias": w["conv2/bias"], "positional_embedding": w["position_encodings/encodings"],
          "ln_post.weight": w["layer_norm/gamma"], "ln_post.bias": w["layer_norm/beta"]}
    layers = sum(1 for k in w if k.endswith("self_attention/linear_0/weight"))
    for i in range(layers):
        src, dst = f"layer_{i}/", f"blocks.{i}."
        qkv_w, qkv_b = np.split(w[src + "self_attention/linear_0/weight"], 3), np.split(w[src + "self_attention/linear_0/bias"], 3)
        if np.abs(qkv_b[1]).max() != 0:
            raise ValueError(f"{src}: the key projection has a bias; Whisper's has none, so this is not a Whisper encoder")
        sd.update({dst + "attn.query.weight": qkv_w[0], dst + "attn.query.bias": qkv_b[0], dst + "attn.key.weight": qkv_w[1],
                   dst + "attn.value.weight": qkv_w[2], dst + "attn.value.bias": qkv_b[2],
                   dst + "attn.out.weight": w[src + "self_attention/linear_1/weight"], dst + "attn.out.bias": w[src + "self_attention/linear_1/bias"],
                   dst + "attn_ln.weight": w[src + "self_attention/layer_norm/gamma"], dst + "attn_ln.bias": w[src + "self_attention/layer_norm/beta"],
                   dst + "mlp.0.weight": w[src + "ffn/linear_0/weight"], dst + "mlp.0.bias": w[src + "ffn/linear_0/bias"],
                   dst + "mlp.2.weight": w[src + "ffn/linear_1/weight"], dst + "mlp.2.bias": w[src + "ffn/linear_1/bias"],
                   dst + "mlp_ln.weight": w[src + "ffn/layer_norm/gamma"], dst + "mlp_ln.bias": w[src + "ffn/layer_norm/beta"]})
    return {k: torch.from_numpy(v.copy()) for k, v in sd.items()}


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query, self.key = nn.Linear(d, d), nn.Linear(d, d, bias=False)
        self.value, self.out = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (p(x).view(b, t, self.heads, d // self.heads).transpose(1, 2) for p in (self.query, self.key, self.value))
        att = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(d // self.heads)), dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.attn, self.attn_ln = Attention(d, heads), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.mlp_ln = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class EncoderLayers(nn.Module):
    """Whisper's audio encoder, ``layers`` blocks of it (all 6 by default; then the final norm too)."""

    def __init__(self, layers: int = N_LAYER):
        super().__init__()
        self.conv1 = nn.Conv1d(N_MELS, N_STATE, 3, padding=1)
        self.conv2 = nn.Conv1d(N_STATE, N_STATE, 3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(N_CTX, N_STATE))
        self.blocks = nn.ModuleList(Block(N_STATE, N_HEAD) for _ in range(layers))
        self.ln_post = nn.LayerNorm(N_STATE) if layers == N_LAYER else None

    def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:
        """[B, 80, frames] -> [input embedding, block 1, ..., block k], each [B, frames // 2, 512]."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positional_embedding[: x.shape[1]]
        out = [x]
        for block in self.blocks:
            x = block(x)
            out.append(x)
        if self.ln_post is not None:
            out[-1] = self.ln_post(x)
        return out


def load_encoder(model: Path | None = None, layers: int = N_LAYER) -> EncoderLayers:
    """The first ``layers`` blocks of the pinned Whisper-base (or of the CTranslate2 model folder ``model``)."""
    if model is None:
        from .whisper_package import model_dir
        model = model_dir()
    sd = state_dict_from_ct2(read_model(Path(model), prefix="encoder/")[1])
    keep = {k: v for k, v in sd.items() if not k.startswith("blocks.") or int(k.split(".")[1]) < layers}
    if layers < N_LAYER:
        keep = {k: v for k, v in keep.items() if not k.startswith("ln_post.")}
    enc = EncoderLayers(layers)
    enc.load_state_dict(keep, strict=True)
    return enc.eval()
