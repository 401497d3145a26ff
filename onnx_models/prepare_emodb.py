"""Lay out the Berlin Database of Emotional Speech (EmoDB; Burkhardt et al., Interspeech 2005; 10 German actors,
535 utterances; CC0 1.0 as listed by audEERING's audb) like the shared corpora, so that `score_onnx` (or
`data.load_corpus`) reads it: 16 kHz mono FLAC under ``wav/`` and ``labels.csv`` (file, speaker, sex, emotion).

    python -m onnx_models.prepare_emodb path/to/emodb/wav --out ~/corpora/emodb

EmoDB names every file ``SSTTTEV.wav``: speaker SS, text TTT, emotion letter E (German initials), version V.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from .data import resample

OUTPUT_RATE_HZ = 16000
EMOTION_OF_LETTER = {"W": "angry", "L": "bored", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral"}
SEX_OF_SPEAKER = {"03": "m", "08": "f", "09": "f", "10": "m", "11": "m", "12": "m", "13": "f", "14": "f", "15": "m", "16": "f"}
FILE_NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[a-z]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])$")


def parse_name(stem: str) -> tuple[str, str, str]:
    """'03a01Wa' -> ('emodb_03', 'm', 'angry')."""
    m = FILE_NAME.match(stem)
    if not m or m["speaker"] not in SEX_OF_SPEAKER or m["emotion"] not in EMOTION_OF_LETTER:
        raise ValueError(f"{stem!r} is not an EmoDB file name (SSTTTEV: speaker {sorted(SEX_OF_SPEAKER)}, "
                         f"text like a01, emotion one of {sorted(EMOTION_OF_LETTER)}, version a-z)")
    return f"emodb_{m['speaker']}", SEX_OF_SPEAKER[m["speaker"]], EMOTION_OF_LETTER[m["emotion"]]


def prepare(source: Path, out: Path) -> int:
    """Convert every EmoDB wav in ``source``; returns the number of clips written."""
    files = sorted(source.glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"no .wav files in {source}: pass EmoDB's wav/ folder")
    (out / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for path in files:
        speaker, sex, emotion = parse_name(path.stem)
        audio, rate = sf.read(path, dtype="float32")
        rel = f"wav/{path.stem}.flac"
        mono = audio.mean(axis=1) if audio.ndim == 2 else audio
        sf.write(out / rel, np.clip(resample(mono, rate, OUTPUT_RATE_HZ), -1.0, 1.0), OUTPUT_RATE_HZ, format="FLAC", subtype="PCM_16")
        rows.append((rel, speaker, sex, emotion))
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "speaker", "sex", "emotion"])
        writer.writerows(rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="EmoDB's wav/ folder")
    p.add_argument("--out", type=Path, required=True, help="the corpus folder to write (labels.csv and wav/)")
    args = p.parse_args(argv)
    print(f"{prepare(args.source, args.out)} clips written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
