"""Whisper-base through CTranslate2 (int8 on CPU): 16 kHz utterances in, text and a confidence out.

No tokenizer library is needed: CTranslate2 takes the prompt as token strings and returns token strings, which
are GPT-2 byte-level BPE pieces turned back into UTF-8 here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .frontend import WHISPER_RATE_HZ, log_mel
from .model_files import model_dir

DEFAULT_LANGUAGE = "it"
COMPUTE_TYPE = "int8"
BEAM_SIZE = 5                  # beam 5 vs greedy: WER 0.39 vs 0.45 on EMOVO telephone, +5 % CPU (README)
MAX_NEW_TOKENS = 160
TOKENS_PER_S = 15.0            # cap on output length per second of audio (fast Italian needs ~8); loops stop here
MIN_TOKENS = 16
NO_REPEAT_NGRAM = 3            # without it, unpadded input sometimes loops ("x y z x y z ...")
# Whisper was trained on 30 s (3000 frames) of input. Utterances padded with silence to 10 s transcribe nearly as
# well (EMOVO telephone WER 0.39 at 10 s, beam 5) at a third of the encoder cost; unpadded or 5 s input makes
# the decoder loop and run on (WER 0.69). Longer utterances are encoded at their own length.
PAD_TO_FRAMES = 1000
MIN_SAMPLES = WHISPER_RATE_HZ // 10
LANG_CODE = re.compile(r"^[a-z]{2,3}$")


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: printable characters stand for the 256 byte values."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return {c: b for b, c in enumerate(chars)}


_BYTES = _byte_decoder()


def detokenize(tokens: list[str]) -> str:
    """Byte-level BPE pieces -> text; special tokens (<|...|>) are dropped."""
    data = bytearray()
    for tok in tokens:
        if tok.startswith("<|") and tok.endswith("|>"):
            continue
        data.extend(_BYTES[c] for c in tok if c in _BYTES)
    return data.decode("utf-8", errors="replace").strip()


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    confidence: float      # exp(mean token log-probability), 0..1
    language: str


class Recognizer:
    """One CTranslate2 Whisper model; ``threads`` intra-op threads (scale with processes, like the workers)."""

    def __init__(self, path: str | Path | None = None, threads: int = 1, pad_to_frames: int | None = PAD_TO_FRAMES,
                 beam_size: int = BEAM_SIZE, no_repeat_ngram: int = NO_REPEAT_NGRAM) -> None:
        import ctranslate2   # the optional extra; imported here so the rest of callpulse never needs it
        self.path = Path(path) if path else model_dir()
        self.model = ctranslate2.models.Whisper(str(self.path), device="cpu", compute_type=COMPUTE_TYPE,
                                                inter_threads=1, intra_threads=threads)
        self.languages = set()
        for line in (self.path / "vocabulary.txt").read_text(encoding="utf-8").splitlines():
            if line.startswith("<|") and line.endswith("|>") and LANG_CODE.match(line[2:-2]):
                self.languages.add(line[2:-2])
        self.pad_to_frames = pad_to_frames
        self.beam_size = beam_size
        self.no_repeat_ngram = no_repeat_ngram
        self._ct2 = ctranslate2

    def transcribe(self, utterances: list[np.ndarray], languages: list[str]) -> list[Transcript]:
        """float32 16 kHz utterances (each <= 30 s) and their language codes -> one Transcript each, batched."""
        if not utterances:
            return []
        langs = [lang if lang in self.languages else DEFAULT_LANGUAGE for lang in languages]
        feats = [log_mel(u if len(u) >= MIN_SAMPLES else np.pad(u, (0, MIN_SAMPLES - len(u))), self.pad_to_frames)
                 for u in utterances]
        width = max(f.shape[1] for f in feats)
        batch = np.stack([np.pad(f, ((0, 0), (0, width - f.shape[1])), constant_values=float(f.min())) for f in feats])
        prompts = [["<|startoftranscript|>", f"<|{lang}|>", "<|transcribe|>", "<|notimestamps|>"] for lang in langs]
        longest_s = max(len(u) for u in utterances) / WHISPER_RATE_HZ
        max_tokens = min(MAX_NEW_TOKENS, MIN_TOKENS + int(TOKENS_PER_S * longest_s))
        results = self.model.generate(self._ct2.StorageView.from_array(batch), prompts, beam_size=self.beam_size,
                                      max_length=max_tokens, return_scores=True, suppress_blank=True,
                                      no_repeat_ngram_size=self.no_repeat_ngram)
        out = []
        for lang, res in zip(langs, results):
            tokens = res.sequences[0]
            # CT2 returns the cumulative log-probability normalised by length (length_penalty 1).
            conf = math.exp(res.scores[0]) if res.scores else 0.0
            out.append(Transcript(detokenize(tokens), round(min(max(conf, 0.0), 1.0), 4), lang))
        return out

