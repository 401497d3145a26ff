"""Build labelled two-leg calls for call-level evaluation (``callpulse evaluate-calls``) from the corpora.

    python -m stream.call_builder --out /work/calls/dev --corpus ravdess emodb --speakers-not-of-fold 0 --per-type 10
    python -m stream.call_builder --out /work/calls/test --corpus ravdess emovo --speakers-of-fold 0

Each call is a stereo 8 kHz G.711 WAV (channel 0 agent, channel 1 customer) plus one entry in ``calls.json``
(format in the README, "Call-level evaluation"). Customers and agents are speakers of the selected folds
(``onnx_models.data.speaker_folds``, the folds ``train --holdout N`` holds out; EmoDB speakers belong to no fold
because ``--extra-train`` trains on all of them, so they count as "not of fold N"). Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from onnx_models.data import DEFAULT_DATA, Clip, speaker_folds
from onnx_models.labels import SENTIMENTS, sentiment_index

from .call_channel import CODECS, Impairments, apply_impairments, draw_impairments
from .sample_calls import SR_OUT_HZ, Turn, _labels, render

SEED = 14
LANGUAGE = {"emovo": "it", "ravdess": "en", "emodb": "de"}
CALL_TYPES = ("escalation", "calm", "tense_calm", "burst", "angry_agent")
# Emotion pools per role; a corpus lacking one (EMOVO has no "calm", RAVDESS no "bored") just uses the rest.
CALM = ("neutral", "calm")
PLEASANT = ("neutral", "calm", "happy")
TENSE = ("sad", "bored", "sad", "neutral")      # mostly negative at rest, never angry
ANGRY = ("angry",)
MIN_ANGRY_TURNS = 3                             # an escalation: at least this many angry customer turns in a row
OVERLAP_P = 0.15                                # share of turns that start before the other leg stopped
HOLD_P = 0.3                                    # share of calls with one long hold (silence on both legs)
HOLD_S = (20.0, 45.0)
GAP_S = (0.3, 1.2)
OVERLAP_S = (0.3, 1.2)
TAIL_S = 1.5


def speaker_table(data: Path, corpora: list[str]) -> dict[str, dict]:
    """speaker -> {corpus, sex, files: {emotion: [file, ...]}} for the chosen corpora."""
    out: dict[str, dict] = {}
    for corpus in corpora:
        for f, row in sorted(_labels(data / corpus).items()):
            spk = out.setdefault(row["speaker"], {"corpus": corpus, "sex": row["sex"], "files": {}})
            spk["files"].setdefault(row["emotion"], []).append(f)
    return out


def fold_of(data: Path) -> dict[str, int]:
    """speaker -> fold, exactly as ``train --holdout`` splits RAVDESS and EMOVO (other corpora: no fold)."""
    clips = [Clip(corpus, row["speaker"], row["sex"], row["emotion"], np.zeros(0, np.float32))
             for corpus in ("ravdess", "emovo") for row in _labels(data / corpus).values()]
    return {spk: i for i, fold in enumerate(speaker_folds(clips)) for spk in fold}


def _clips(spk: dict, pool: tuple[str, ...], n: int, rng: np.random.Generator) -> list[str]:
    emotions = [e for e in pool if spk["files"].get(e)]
    if not emotions:
        raise ValueError(f"speaker has none of the emotions {pool}")
    files = []
    for _ in range(n):
        choices = spk["files"][emotions[int(rng.integers(len(emotions)))]]
        files.append(choices[int(rng.integers(len(choices)))])
    return files


def script(kind: str, rng: np.random.Generator) -> list[tuple[str, tuple[str, ...], int]]:
    """The call's turns as (leg, emotion pool, clips), agent and customer alternating, agent first."""
    cust: list[tuple[tuple[str, ...], int]]
    agent_angry: set[int] = set()
    if kind == "escalation":
        calm_turns, angry_turns = int(rng.integers(2, 4)), int(rng.integers(MIN_ANGRY_TURNS, 6))
        cust = [(CALM, int(rng.integers(1, 3))) for _ in range(calm_turns)] + [(ANGRY, int(rng.integers(1, 4))) for _ in range(angry_turns)]
    elif kind == "calm":
        cust = [(CALM, int(rng.integers(1, 3)))] + [(PLEASANT, int(rng.integers(1, 4))) for _ in range(int(rng.integers(4, 7)))]
    elif kind == "tense_calm":
        cust = [(TENSE, int(rng.integers(1, 4))) for _ in range(int(rng.integers(5, 8)))]
    elif kind == "burst":
        before, after = int(rng.integers(2, 4)), int(rng.integers(3, 5))
        cust = ([(CALM, int(rng.integers(1, 3))) for _ in range(before)] + [(ANGRY, 1)]
                + [(CALM, int(rng.integers(1, 3))) for _ in range(after)])
    elif kind == "angry_agent":
        cust = [(PLEASANT, int(rng.integers(1, 3))) for _ in range(int(rng.integers(5, 7)))]
        agent_angry = set(range(1, 1 + MIN_ANGRY_TURNS + int(rng.integers(0, 2))))
    else:
        raise ValueError(f"unknown call type {kind!r}; one of {CALL_TYPES}")
    turns = []
    for i, (pool, n) in enumerate(cust):
        turns.append(("agent", ANGRY if i in agent_angry else CALM, int(rng.integers(1, 3))))
        turns.append(("customer", pool, n))
    return turns


def build_call(data: Path, call_id: str, kind: str, customer: str, agent: str, table: dict, folds: dict[str, int],
               rng: np.random.Generator, impairments: Impairments) -> tuple[np.ndarray, dict]:
    corpus = table[customer]["corpus"]
    turns, holds = [], []
    hold_at = 2 * int(rng.integers(1, 3)) if rng.random() < HOLD_P else -1   # an agent turn
    for i, (leg, pool, n) in enumerate(script(kind, rng)):
        if i == hold_at:
            gap = float(rng.uniform(*HOLD_S))
            holds.append(round(gap, 2))
        elif i > 0 and rng.random() < OVERLAP_P:
            gap = -float(rng.uniform(*OVERLAP_S))
        else:
            gap = float(rng.uniform(*GAP_S))
        turns.append(Turn(leg, _clips(table[customer if leg == "customer" else agent], pool, n, rng), gap_s=gap))
    audio, segments = render(data / corpus, _labels(data / corpus), turns, TAIL_S, rng)
    audio = apply_impairments(audio, impairments, rng)
    turn_of = [i for i, t in enumerate(turns) for _ in t.clips]
    for seg, turn in zip(segments, turn_of):
        seg["turn"] = turn
        s = sentiment_index(seg["emotion"])
        seg["sentiment"] = SENTIMENTS[s] if s >= 0 else None
    angry = [s["start_s"] for s in segments if s["leg"] == "customer" and s["emotion"] == "angry"]
    entry = {"call_id": call_id, "file": f"{call_id}.wav", "type": kind, "corpus": corpus, "language": LANGUAGE.get(corpus, ""),
             "speakers": {"agent": agent, "customer": customer}, "fold": folds.get(customer),
             "duration_s": round(len(audio) / SR_OUT_HZ, 3), "first_angry_customer_s": min(angry) if angry else None,
             "holds_s": holds, "impairments": impairments.to_dict(), "segments": segments}
    return audio, entry


def choose_speakers(table: dict, folds: dict[str, int], fold: int | None, held_out: bool) -> dict[str, list[str]]:
    """corpus -> speakers: those of ``fold`` (held_out) or those not in it; all when fold is None."""
    out: dict[str, list[str]] = {}
    for spk, info in sorted(table.items()):
        if fold is None or (folds.get(spk) == fold) == held_out:
            out.setdefault(info["corpus"], []).append(spk)
    return {c: s for c, s in out.items() if len(s) >= 2}   # a call needs two speakers of one corpus


def build(data: Path, out: Path, corpora: list[str], per_type: dict[str, int], fold: int | None = None,
          held_out: bool = True, seed: int = SEED, prefix: str = "") -> list[dict]:
    table, folds = speaker_table(data, corpora), fold_of(data)
    by_corpus = choose_speakers(table, folds, fold, held_out)
    if not by_corpus:
        raise ValueError(f"no corpus among {corpora} has two speakers {'of' if held_out else 'outside'} fold {fold}")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    corpus_names = sorted(by_corpus)
    calls, turn_of = [], {c: 0 for c in corpus_names}   # customers take turns within each corpus, across types
    for kind in CALL_TYPES:
        for i in range(per_type.get(kind, 0)):
            corpus = corpus_names[i % len(corpus_names)]
            pool = by_corpus[corpus]
            customer = pool[turn_of[corpus] % len(pool)]
            turn_of[corpus] += 1
            agent = [s for s in pool if s != customer][int(rng.integers(len(pool) - 1))]
            call_id = f"{prefix}{kind}-{corpus}-{i:03d}"
            audio, entry = build_call(data, call_id, kind, customer, agent, table, folds, rng, draw_impairments(rng))
            sf.write(out / entry["file"], audio, SR_OUT_HZ, subtype=CODECS[entry["impairments"]["codec"]])
            calls.append(entry)
    meta = {"format": "callpulse-calls/1", "seed": seed, "corpora": corpora, "fold": fold,
            "speakers": "held out of fold" if held_out else "not in fold", "calls": calls}
    (out / "calls.json").write_text(json.dumps(meta, indent=1) + "\n")
    return calls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--corpus", nargs="+", default=["ravdess", "emovo", "emodb"], choices=sorted(LANGUAGE))
    who = p.add_mutually_exclusive_group()
    who.add_argument("--speakers-of-fold", type=int, metavar="N", help="only speakers that `train --holdout N` holds out")
    who.add_argument("--speakers-not-of-fold", type=int, metavar="N", help="only speakers that `train --holdout N` trains on")
    p.add_argument("--per-type", type=int, default=10, help="calls of each type (escalation, calm: this many; the others half)")
    p.add_argument("--types", nargs="+", default=list(CALL_TYPES), choices=CALL_TYPES)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--prefix", default="", help="prefix of every call id")
    args = p.parse_args(argv)
    fold = args.speakers_of_fold if args.speakers_of_fold is not None else args.speakers_not_of_fold
    per_type = {k: (args.per_type if k in ("escalation", "calm") else max(1, args.per_type // 2)) for k in args.types}
    calls = build(args.data, args.out, args.corpus, per_type, fold, args.speakers_not_of_fold is None, args.seed, args.prefix)
    minutes = sum(c["duration_s"] for c in calls) / 60
    print(json.dumps({"out": str(args.out), "calls": len(calls), "minutes": round(minutes, 1),
                      "by_type": {k: sum(c["type"] == k for c in calls) for k in CALL_TYPES}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
