"""Rebuild the shipped sample calls from the labelled corpora (deterministic for a given data folder).

    python -m stream.sample_calls --data ../shared/data --out stream/samples

Each call is a stereo 8 kHz u-law WAV (channel 0 agent, channel 1 customer), both legs sample-aligned from
the moment the call was answered, with turn-taking gaps, a few overlaps, and comfort noise on a silent leg,
plus `calls.json` with the metadata and the ground-truth segments (which clip, which emotion, when).
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfilt

SR_IN_HZ = 16000
SR_OUT_HZ = 8000
COMFORT_NOISE_DBFS = -60.0
BAND_HZ = (300.0, 3400.0)
SPEECH_LEVEL_DBFS = {"agent": -22.0, "customer": -19.0}   # RMS of the active speech
TRIM_FLOOR_DB = 30.0                                      # trim leading/trailing audio this far below the clip's peak frame
FRAME = 320                                               # 20 ms at 16 kHz
SEED = 20261125


@dataclass
class Turn:
    leg: str
    clips: list[str]          # files relative to the corpus folder
    gap_s: float = 0.6        # pause before this turn (negative: overlap with the previous turn)


def _trim(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    db = 10 * np.log10((x[: n * FRAME].reshape(n, FRAME) ** 2).mean(1) + 1e-12)
    on = np.flatnonzero(db > db.max() - TRIM_FLOOR_DB)
    return x[on[0] * FRAME:(on[-1] + 1) * FRAME]


def _level(x: np.ndarray, dbfs: float) -> np.ndarray:
    rms = np.sqrt((x ** 2).mean()) + 1e-12
    return x * (10 ** (dbfs / 20) / rms)


def _labels(corpus_dir: Path) -> dict[str, dict]:
    with open(corpus_dir / "labels.csv", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def pick(labels: dict[str, dict], speaker: str, emotion: str, n: int, rng: np.random.Generator, intensity: str | None = None) -> list[str]:
    files = sorted(f for f, r in labels.items() if r["speaker"] == speaker and r["emotion"] == emotion
                   and (intensity is None or r.get("intensity") == intensity))
    if len(files) < n:
        raise ValueError(f"{speaker} has {len(files)} '{emotion}' clips, {n} needed")
    return [files[i] for i in rng.choice(len(files), n, replace=False)]


def render(corpus_dir: Path, labels: dict[str, dict], turns: list[Turn], tail_s: float, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """Lay the turns out on two aligned tracks at 16 kHz, then band-limit and resample to 8 kHz."""
    placed: list[tuple[str, int, np.ndarray, str]] = []
    t = int(0.8 * SR_IN_HZ)
    for turn in turns:
        t = max(0, t + int(turn.gap_s * SR_IN_HZ))
        for k, f in enumerate(turn.clips):
            audio, rate = sf.read(corpus_dir / f, dtype="float32")
            assert rate == SR_IN_HZ, f"{f}: expected 16 kHz"
            clip = _level(_trim(audio), SPEECH_LEVEL_DBFS[turn.leg])
            placed.append((turn.leg, t, clip, f))
            t += len(clip) + (int(rng.uniform(0.15, 0.4) * SR_IN_HZ) if k < len(turn.clips) - 1 else 0)
    total = t + int(tail_s * SR_IN_HZ)
    tracks = {leg: np.zeros(total, np.float32) for leg in ("agent", "customer")}
    segments = []
    for leg, start, clip, f in placed:
        tracks[leg][start:start + len(clip)] += clip
        row = labels[f]
        segments.append({"leg": leg, "start_s": round(start / SR_IN_HZ, 3), "end_s": round((start + len(clip)) / SR_IN_HZ, 3),
                         "source_file": f, "emotion": row["emotion"], "speaker": row["speaker"]})
    band = butter(4, BAND_HZ, btype="bandpass", fs=SR_IN_HZ, output="sos")
    noise_rms = 10 ** (COMFORT_NOISE_DBFS / 20)
    out = []
    for leg in ("agent", "customer"):
        x = sosfilt(band, tracks[leg]) + rng.normal(0, noise_rms, total)
        out.append(resample_poly(x, SR_OUT_HZ, SR_IN_HZ))
    return np.clip(np.stack(out, axis=1), -1, 1).astype(np.float32), segments


def scripts(data: Path, rng: np.random.Generator) -> list[dict]:
    emovo, rav = _labels(data / "emovo"), _labels(data / "ravdess")
    calls = []
    # 1. Italian: a customer who gets angry for a sustained stretch, then is calmed down.
    a, c = "emovo-m1", "emovo-f2"
    calls.append({"call_id": "demo-it-angry", "corpus": "emovo", "language": "it", "queue": "billing", "campaign": "winter", "agent_id": "agent-it-01",
                  "turns": [Turn("agent", pick(emovo, a, "neutral", 1, rng)), Turn("customer", pick(emovo, c, "neutral", 2, rng)),
                            Turn("agent", pick(emovo, a, "neutral", 1, rng)), Turn("customer", pick(emovo, c, "angry", 3, rng)),
                            Turn("agent", pick(emovo, a, "neutral", 1, rng), gap_s=-0.6), Turn("customer", pick(emovo, c, "angry", 4, rng), gap_s=0.3),
                            Turn("agent", pick(emovo, a, "neutral", 2, rng)), Turn("customer", pick(emovo, c, "angry", 2, rng), gap_s=-0.5),
                            Turn("agent", pick(emovo, a, "neutral", 2, rng)), Turn("customer", pick(emovo, c, "neutral", 2, rng)),
                            Turn("agent", pick(emovo, a, "neutral", 2, rng)), Turn("customer", pick(emovo, c, "neutral", 1, rng)),
                            Turn("agent", pick(emovo, a, "happy", 1, rng)), Turn("customer", pick(emovo, c, "happy", 2, rng))], "tail_s": 1.5})
    # 2. English: a sad customer, a 35 s hold in silence, then both talk over each other.
    a, c = "ravdess-07", "ravdess-12"
    calls.append({"call_id": "demo-en-silence", "corpus": "ravdess", "language": "en", "queue": "support", "campaign": "winter", "agent_id": "agent-en-07",
                  "turns": [Turn("agent", pick(rav, a, "calm", 2, rng)), Turn("customer", pick(rav, c, "sad", 3, rng)),
                            Turn("agent", pick(rav, a, "neutral", 2, rng)), Turn("customer", pick(rav, c, "neutral", 2, rng)),
                            Turn("agent", pick(rav, a, "calm", 2, rng), gap_s=35.0),
                            Turn("customer", pick(rav, c, "angry", 3, rng, "strong"), gap_s=-4.0),
                            Turn("agent", pick(rav, a, "neutral", 3, rng), gap_s=-4.5),
                            Turn("customer", pick(rav, c, "sad", 2, rng), gap_s=0.8), Turn("agent", pick(rav, a, "calm", 2, rng))], "tail_s": 1.5})
    # 3. English: a pleasant call.
    a, c = "ravdess-03", "ravdess-18"
    calls.append({"call_id": "demo-en-happy", "corpus": "ravdess", "language": "en", "queue": "sales", "campaign": "spring", "agent_id": "agent-en-03",
                  "turns": [Turn("agent", pick(rav, a, "happy", 2, rng)), Turn("customer", pick(rav, c, "neutral", 2, rng)),
                            Turn("agent", pick(rav, a, "calm", 2, rng)), Turn("customer", pick(rav, c, "neutral", 2, rng)),
                            Turn("agent", pick(rav, a, "happy", 2, rng)), Turn("customer", pick(rav, c, "happy", 3, rng, "strong")),
                            Turn("agent", pick(rav, a, "happy", 2, rng), gap_s=-0.4), Turn("customer", pick(rav, c, "happy", 3, rng)),
                            Turn("agent", pick(rav, a, "calm", 2, rng)), Turn("customer", pick(rav, c, "neutral", 2, rng)),
                            Turn("agent", pick(rav, a, "happy", 2, rng)), Turn("customer", pick(rav, c, "happy", 2, rng))], "tail_s": 3.0})
    return calls


def build(data: Path, out: Path) -> list[dict]:
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for spec in scripts(data, rng):
        audio, segments = render(data / spec["corpus"], _labels(data / spec["corpus"]), spec["turns"], spec["tail_s"], rng)
        name = f"{spec['call_id']}.wav"
        sf.write(out / name, audio, SR_OUT_HZ, subtype="ULAW")
        manifest.append({"file": name, "call_id": spec["call_id"], "agent_id": spec["agent_id"], "queue": spec["queue"],
                         "campaign": spec["campaign"], "language": spec["language"], "direction": "inbound",
                         "corpus": spec["corpus"], "duration_s": round(len(audio) / SR_OUT_HZ, 3), "segments": segments})
    (out / "calls.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    root = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=root / "stream" / "samples")
    args = p.parse_args(argv)
    for call in build(args.data, args.out):
        print(f"{call['file']}: {call['duration_s']:.1f} s, {len(call['segments'])} segments")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
