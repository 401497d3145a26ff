"""The pure core alone (no Kafka, no Redis, no Faust) on the benchmark's synthetic backlog: CPU ms per message.

    .venv/bin/python scripts/bench_core.py --calls 200 --seconds 30            # with the shipped models
    .venv/bin/python scripts/bench_core.py --calls 200 --seconds 30 --no-models --profile

``--no-models`` answers every window with fixed probabilities, so the figure is the core's own cost (decode,
reorder, VAD, steps, state, rules, rendering). Used to compare changes quickly: run the before and after trees
alternately (``cd OTHER_TREE && python .../bench_core.py``) on a shared machine and compare medians.
Issue 16 reports these figures with the commands that produced them.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

import numpy as np
from prometheus_client import CollectorRegistry

sys.path.insert(0, os.getcwd())   # measure the tree this is run from

from stream import topics  # noqa: E402
from stream.bench_support import SR, encoded_calls, frame_header  # noqa: E402
from stream.events import CallEvent  # noqa: E402
from stream.frame import LEGS  # noqa: E402
from stream.settings import Settings  # noqa: E402
from workers.agent import _load_rules  # noqa: E402
from workers.inference import Models  # noqa: E402
from workers.metrics import WorkerMetrics  # noqa: E402
from workers.pipeline import Pipeline, Record  # noqa: E402

BATCH = 512          # the worker's batch_max_messages
PARTITIONS = 8


class FixedScores:
    """Every window: uniform emotions, neutral sentiment. The core's own cost, without the models'."""

    def __init__(self, n_labels: int) -> None:
        self.n = n_labels

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.full((len(windows), self.n), 1 / self.n, np.float32), np.zeros(len(windows), np.float32)


def core_pipeline(settings: Settings, models: Models, fixed_scores: bool) -> Pipeline:
    """The worker's pure core with its default rules, scoring windows with ``models`` or with ``FixedScores``."""
    labels = models.emotion.labels
    runner = FixedScores(len(labels)) if fixed_scores else models
    return Pipeline(settings, runner, labels, WorkerMetrics(CollectorRegistry()), _load_rules(settings))


def backlog(calls: int, seconds: float, chunk_ms: int) -> list[Record]:
    audio = encoded_calls(seconds, chunk_ms)
    chunk = SR * chunk_ms // 1000
    t0 = time.time() - seconds - 5
    ids = [f"c{i}".encode() for i in range(calls)]
    recs = [Record(topics.EVENTS, cid, CallEvent(type="start", call_id=cid.decode(), ts=t0, queue=f"q{i % 4}").to_bytes(), object(), i % PARTITIONS)
            for i, cid in enumerate(ids)]
    for seq in range(int(seconds * 1000 // chunk_ms)):
        for i, cid in enumerate(ids):
            for li, leg in enumerate(LEGS):
                value = frame_header(cid, li, seq, t0 + seq * chunk_ms / 1000, chunk) + audio[i % len(audio)][leg][seq]
                recs.append(Record(topics.AUDIO, cid, value, object(), i % PARTITIONS))
    return recs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--chunk-ms", type=int, default=500)
    p.add_argument("--batch", type=int, default=BATCH, help="messages per batch (a worker at real time gets small ones)")
    p.add_argument("--no-models", action="store_true")
    p.add_argument("--profile", action="store_true", help="cProfile the run and print the top functions")
    args = p.parse_args()
    settings = Settings()
    pipe = core_pipeline(settings, Models(None, threads=1), args.no_models)
    try:   # as the worker after its start-up (trees before stop 28 have no gc_tuning)
        from workers.gc_tuning import tune_gc
        tune_gc(settings.gc_gen0_threshold)
    except ImportError:
        pass
    recs = backlog(args.calls, args.seconds, args.chunk_ms)
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {os.cpu_count() - 1})
    prof = cProfile.Profile() if args.profile else None
    c0 = time.process_time()
    if prof:
        prof.enable()
    for i in range(0, len(recs), args.batch):
        pipe.process(recs[i:i + args.batch])
    if prof:
        prof.disable()
    cpu = time.process_time() - c0
    audio = len(recs) - args.calls
    print(f"{os.getcwd()}: {1000 * cpu / audio:.4f} CPU ms per message ({audio} audio messages, {cpu:.2f} s, "
          f"batches of {args.batch}, {'no models' if args.no_models else 'models'}{', profiled' if prof else ''})")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
