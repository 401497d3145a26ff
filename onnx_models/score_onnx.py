"""Score the shipped ONNX files on a labelled corpus, through the published contract only (the workers' `OnnxClassifier` on onnxruntime):
the check anyone can run on speech the models never saw.

    python -m onnx_models.score_onnx ~/corpora/emodb                       # the folder holds labels.csv
    python -m onnx_models.score_onnx ~/corpora/urdu --json onnx_models/reports/unseen_urdu_0.6.0.json   # a corpus 0.6.0 never trained on

The folder is laid out like the shared corpora: ``labels.csv`` (file, speaker, sex, emotion) and mono audio files
at 8 kHz or more, one speaker (call leg) per file (`prepare_emodb` writes that layout for the Berlin EmoDB). Emotion is scored on the classes that the corpus and the
model share, sentiment on every clip whose emotion has a sentiment; both per 2 s window and per clip, clean and
through the telephone channel, with the same code as `evaluate`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from workers.inference import (
    EMOTION_MODEL,
    SENTIMENT_LABELS,
    SENTIMENT_MODEL,
    ModelContractError,
    OnnxClassifier,
    default_model_dir,
)

from .data import Clip, load_folder
from .labels import EMOTIONS
from .scoring import channel, predict_windows, score, shared_labels


def score_corpus(clips: list[Clip], model_dir: Path, threads: int = 1) -> dict:
    emotion = OnnxClassifier(model_dir / EMOTION_MODEL, threads)
    sentiment = OnnxClassifier(model_dir / SENTIMENT_MODEL, threads)
    if emotion.labels != EMOTIONS or sentiment.labels != SENTIMENT_LABELS:
        raise ModelContractError(f"scoring expects emotion labels {EMOTIONS} and sentiment labels {SENTIMENT_LABELS}, "
                                 f"got {emotion.labels} and {sentiment.labels}")
    labels = shared_labels(clips, emotion.labels)
    if len(labels) < 2:
        raise ValueError(f"the corpus shares fewer than two emotions with the model ({labels}); model labels: {emotion.labels}")

    def probabilities(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return emotion.predict(windows), sentiment.predict(windows)

    result: dict = {"model_version": emotion.info.version, "clips": len(clips), "speakers": len({c.speaker for c in clips}),
                    "labels": list(labels), "unscored_emotions": sorted({c.emotion for c in clips} - set(labels))}
    for kind in ("clean", "telephone"):
        emo, sent = predict_windows(probabilities, channel(clips, kind), batch=16)
        result[kind] = score(clips, emo, sent, labels)
    return result


def summary_lines(name: str, r: dict) -> list[str]:
    lines = [f"{name}: {r['clips']} clips, {r['speakers']} speakers, models {r['model_version']}; emotion on {len(r['labels'])} "
             f"classes {r['labels']} (chance {1 / len(r['labels']):.3f})" + (f", not scored: {r['unscored_emotions']}" if r["unscored_emotions"] else "")]
    for kind in ("clean", "telephone"):
        c, w = r[kind]["clip"], r[kind]["window"]
        lines.append(f"  {kind:9s} emotion UA clip {c['emotion']['ua']:.3f} (macro-F1 {c['emotion']['macro_f1']:.3f}), window "
                     f"{w['emotion']['ua']:.3f}; sentiment head UA {c['sentiment_head']['ua']:.3f}, derived {c['sentiment_derived']['ua']:.3f}; "
                     f"per sex {c['per_sex_ua']}")
        lines.append(f"  {'':9s} recall {c['per_class_recall']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", type=Path, help="folder with labels.csv (file, speaker, sex, emotion) and mono audio at 8 kHz or more")
    p.add_argument("--models", type=Path, default=default_model_dir(), help="folder with emotion.onnx and sentiment.onnx")
    p.add_argument("--json", type=Path, help="also write the full result (confusions included) here")
    args = p.parse_args(argv)
    folder = args.corpus.resolve()
    result = score_corpus(load_folder(folder), args.models)
    print("\n".join(summary_lines(folder.name, result)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"corpus": folder.name, **result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
