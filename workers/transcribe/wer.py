"""Word error rate of the transcriber's recogniser on the shared corpora's sentences, clean and telephone band.

    nice -n 10 python -m workers.transcribe.wer --corpus emovo --channel telephone --json artifacts/wer-emovo-tel.json

Telephone band is the serving path itself: 16 kHz clip -> 8 kHz -> 300-3400 Hz band-pass -> G.711 mu-law ->
decoded -> back to 16 kHz with the transcriber's own up-sampler. EMOVO's ``n5`` (a string of numbers) has no
reference text and is left out. Needs the ``transcribe`` extra and scipy (``test`` extra) for the channel.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
import unicodedata
from pathlib import Path

import numpy as np
import soundfile as sf

from .frontend import WHISPER_RATE_HZ, upsample_8k_to_16k
from .recognizer import BEAM_SIZE, NO_REPEAT_NGRAM, PAD_TO_FRAMES, Recognizer

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
LANGUAGE = {"emovo": "it", "ravdess": "en"}
PUNCT = re.compile(r"[^\w' ]+")


def normalise(text: str) -> list[str]:
    """Lower case, NFC, elisions split after the apostrophe (l'autunno -> l' autunno), punctuation dropped."""
    t = unicodedata.normalize("NFC", text.lower()).replace("’", "'")
    t = t.replace("'", "' ")
    return PUNCT.sub(" ", t).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def telephone(x16: np.ndarray) -> np.ndarray:
    from onnx_models.augment import telephone_band
    from onnx_models.data import resample
    return upsample_8k_to_16k(telephone_band(resample(x16, WHISPER_RATE_HZ, 8000)))


def load(corpus: str, data: Path, every: int) -> list[tuple[str, str, str]]:
    root = data / corpus
    texts = {r["sentence"]: r["text"] for r in csv.DictReader(open(root / "sentences.csv", newline=""))}
    rows = [r for r in csv.DictReader(open(root / "labels.csv", newline="")) if r["sentence"] in texts]
    rows.sort(key=lambda r: r["file"])
    return [(str(root / r["file"]), texts[r["sentence"]], r["sentence"]) for r in rows[::every]]


def _by_group(by_sentence: dict[str, list[int]]) -> dict[str, float]:
    groups: dict[str, list[int]] = {}
    for code, (e, n) in by_sentence.items():
        g = groups.setdefault("nonsense" if code.startswith("n") else "meaningful", [0, 0])
        g[0] += e
        g[1] += n
    return {k: round(e / max(n, 1), 4) for k, (e, n) in sorted(groups.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", choices=sorted(LANGUAGE), required=True)
    ap.add_argument("--channel", choices=("clean", "telephone"), default="telephone")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--every", type=int, default=1, help="score every k-th clip (sorted by file name): a stated subset")
    ap.add_argument("--pad-to-frames", type=int, default=PAD_TO_FRAMES, help="pad input to this many 10 ms frames; 0: no padding")
    ap.add_argument("--beam", type=int, default=BEAM_SIZE)
    ap.add_argument("--no-repeat-ngram", type=int, default=NO_REPEAT_NGRAM)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rec = Recognizer(pad_to_frames=args.pad_to_frames or None, beam_size=args.beam, no_repeat_ngram=args.no_repeat_ngram)
    items = load(args.corpus, args.data, args.every)
    errors = words = 0
    by_sentence: dict[str, list[int]] = {}
    audio_s = compute_s = 0.0
    examples = []
    for path, ref, code in items:
        x, sr = sf.read(path, dtype="float32")
        if sr != WHISPER_RATE_HZ:
            raise ValueError(f"{path}: expected {WHISPER_RATE_HZ} Hz, got {sr}")
        if args.channel == "telephone":
            x = telephone(x)
        t0 = time.process_time()
        hyp = rec.transcribe([x], [LANGUAGE[args.corpus]])[0].text
        compute_s += time.process_time() - t0
        audio_s += len(x) / WHISPER_RATE_HZ
        r, h = normalise(ref), normalise(hyp)
        e = edit_distance(r, h)
        errors += e
        words += len(r)
        agg = by_sentence.setdefault(code, [0, 0])
        agg[0] += e
        agg[1] += len(r)
        if len(examples) < 12:
            examples.append({"file": Path(path).name, "ref": ref, "hyp": hyp})
    result = {
        "corpus": args.corpus, "channel": args.channel, "clips": len(items), "every": args.every,
        "pad_to_frames": args.pad_to_frames or None, "beam": args.beam, "no_repeat_ngram": args.no_repeat_ngram, "words": words, "errors": errors,
        "wer": round(errors / max(words, 1), 4),
        "wer_by_sentence": {k: round(e / max(n, 1), 4) for k, (e, n) in sorted(by_sentence.items())},
        "words_by_sentence": {k: n for k, (_, n) in sorted(by_sentence.items())},
        # EMOVO's n1-n4 are semantically empty on purpose (no language model can help): scored apart too
        "wer_by_group": _by_group(by_sentence),
        "cpu_seconds_per_audio_second": round(compute_s / max(audio_s, 1e-9), 4), "examples": examples,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "examples"}, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
