"""The labelled corpora, resampled to the telephone rate, with speaker-independent splits and the 2 s / 1 s hop
windows the workers see."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from .dsp import SAMPLE_RATE_HZ, WINDOW_S
from .labels import EMOTIONS, sentiment_index

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPORA = ("ravdess", "emovo")
WINDOW = int(WINDOW_S * SAMPLE_RATE_HZ)
HOP = SAMPLE_RATE_HZ            # 1 s, as the workers step
FRAME = 160                     # 20 ms energy frames for picking speech-bearing windows
MIN_SPEECH_SHARE = 0.25         # a window with less speech than this is not scored by the workers either


@dataclass
class Clip:
    corpus: str
    speaker: str
    sex: str
    emotion: str
    audio: np.ndarray           # float32 at SAMPLE_RATE_HZ

    @property
    def label(self) -> int:
        return EMOTIONS.index(self.emotion)

    @property
    def sentiment(self) -> int:
        return sentiment_index(self.emotion)


def resample(audio: np.ndarray, rate: int, to_rate: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Polyphase resampling of a whole clip, float32 (to the models' rate by default: 16 kHz corpora by 1/2,
    8 kHz telephone audio unchanged)."""
    if rate == to_rate:
        return audio.astype(np.float32)
    g = gcd(rate, to_rate)
    return resample_poly(audio, to_rate // g, rate // g).astype(np.float32)


def load_corpus(name: str, data_dir: Path = DEFAULT_DATA) -> list[Clip]:
    """``data_dir/name/labels.csv`` (file, speaker, sex, emotion) and its mono audio files, at any sample rate of
    at least 8 kHz, resampled to the models' rate."""
    root = Path(data_dir) / name
    if not (root / "labels.csv").exists():
        raise FileNotFoundError(f"{root}/labels.csv not found: pass --data pointing at the folder with {CORPORA}")
    clips = []
    with open(root / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            audio, rate = sf.read(root / row["file"], dtype="float32")
            if audio.ndim != 1 or rate < SAMPLE_RATE_HZ:
                raise ValueError(f"{row['file']}: expected mono audio (one call leg per file) at {SAMPLE_RATE_HZ} Hz or more, "
                                 f"got {audio.shape[1] if audio.ndim > 1 else 1} channel(s) at {rate} Hz")
            clips.append(Clip(name, row["speaker"], row["sex"], row["emotion"], resample(audio, rate)))
    return clips


def load_folder(folder: Path) -> list[Clip]:
    """A corpus folder anywhere (``labels.csv`` and its audio), its clips tagged with the folder's name."""
    folder = Path(folder).resolve()
    return load_corpus(folder.name, folder.parent)


def load_extra_training(folders: list[Path]) -> list[Clip]:
    """Clips of further corpora to add to training, those whose emotion the model has a class for (EmoDB's
    bored clips, for one, are left out). A folder with none of them is an error, not a silent no-op."""
    out = []
    for folder in folders:
        clips = load_folder(folder)
        kept = [c for c in clips if c.emotion in EMOTIONS]
        if not kept:
            raise ValueError(f"{folder}: none of its emotions {sorted({c.emotion for c in clips})} is one of the model's {EMOTIONS}")
        out += kept
    return out


def load_all(data_dir: Path = DEFAULT_DATA) -> list[Clip]:
    return [c for name in CORPORA for c in load_corpus(name, data_dir)]


def speech_mask(audio: np.ndarray) -> np.ndarray:
    """20 ms frames above (clip's quietest decile + 15 dB) and above -50 dBFS: a crude, level-independent VAD."""
    n = len(audio) // FRAME
    frames = audio[: n * FRAME].reshape(n, FRAME)
    db = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-10)
    floor = np.percentile(db, 10)
    return (db > floor + 15) & (db > -50)


def windows_of(audio: np.ndarray) -> list[np.ndarray]:
    """The 2 s windows (1 s hop) a worker would score; clips shorter than a window are centred in silence."""
    if len(audio) < WINDOW:
        pad = WINDOW - len(audio)
        audio = np.pad(audio, (pad // 2, pad - pad // 2))
    mask = speech_mask(audio)
    out = []
    for start in range(0, len(audio) - WINDOW + 1, HOP):
        share = mask[start // FRAME:(start + WINDOW) // FRAME].mean()
        if share >= MIN_SPEECH_SHARE:
            out.append(audio[start:start + WINDOW])
    if not out:   # very short or quiet clip: its loudest window
        power = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
        energy = power[WINDOW::FRAME] - power[:len(audio) - WINDOW + 1:FRAME]    # sliding 2 s sums, one per frame
        start = int(np.argmax(energy)) * FRAME
        out.append(audio[start:start + WINDOW])
    return out


def speech_crop(audio: np.ndarray, rng: np.random.Generator, length: int = WINDOW) -> np.ndarray:
    """A random crop of ``length`` samples (2 s by default) that holds speech: training sees what the workers score."""
    if len(audio) <= length:
        pad = length - len(audio)
        left = int(rng.integers(0, pad + 1))
        return np.pad(audio, (left, pad - left))
    mask = speech_mask(audio)
    starts = np.arange(0, len(audio) - length + 1, FRAME)
    shares = np.array([mask[s // FRAME:(s + length) // FRAME].mean() for s in starts])
    good = starts[shares >= min(max(MIN_SPEECH_SHARE, shares.max() * 0.6), shares.max())]
    start = int(rng.choice(good))
    return audio[start:start + length]


def speaker_folds(clips: list[Clip], n_folds: int = 3) -> list[set[str]]:
    """Speaker-independent folds: each corpus's speakers dealt round-robin (sorted, alternating sex), so every
    fold holds out speakers of both corpora and both sexes."""
    folds: list[set[str]] = [set() for _ in range(n_folds)]
    for corpus in CORPORA:
        by_sex: dict[str, list[str]] = {}
        for c in clips:
            if c.corpus == corpus:
                by_sex.setdefault(c.sex, [])
                if c.speaker not in by_sex[c.sex]:
                    by_sex[c.sex].append(c.speaker)
        order = [s for pair in zip(*(sorted(v) for v in by_sex.values())) for s in pair]
        for i, spk in enumerate(order):
            folds[i % n_folds].add(spk)
    return folds
