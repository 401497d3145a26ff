"""``callpulse bench --transcribe``: the transcription tier's own figures.

1. The recogniser alone: utterances cut by the serving cutter from the shipped sample calls (8 kHz telephone
   audio, EMOVO and RAVDESS sentences), transcribed one at a time with one intra-op thread on one core:
   real-time factor (CPU seconds per second of utterance audio), and from it and the calls' speech share the
   calls one core could carry.
2. Through the real stack: N staggered sample calls at real-time pace -> embedded broker -> one ``callpulse
   transcriber`` pinned to one core -> Redis. A run is sustained when every utterance reaches Redis and the p99
   end-of-utterance -> Redis latency stays under ``SUSTAINED_P99_S``. ``--saturate`` searches the largest
   sustained N, then measures p50/p99 at half of it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import redis

from .bench_support import TRANSCRIBER_START_TIMEOUT_S, WorkerUnderTest, cpu_seconds, histogram, quantile, scrape
from .frame import AudioFrame, encode_frame
from .localstack import LocalStack
from .producer import CallProducer
from .redis_keys import Keys
from .replay import load_sample_calls
from . import topics

TRANSCRIBER_CORE = 0
CHUNK_S = 0.5
STAGGER_S = 10.0              # call starts spread over this many seconds, so utterance ends do not coincide
DRAIN_TIMEOUT_S = 30.0
SUSTAINED_P99_S = 8.0           # "keeps up": every utterance written and no growing backlog (latency target is separate)
LATENCY_METRIC = "callpulse_transcript_latency_seconds"


@dataclass
class TranscribeRun:
    calls: int
    seconds: float
    expected_segments: int
    written_segments: int
    sustained: bool
    p50_latency_ms: float | None
    p99_latency_ms: float | None
    transcriber_cpu_utilisation: float
    send_lag_max_s: float


@dataclass
class TranscribeBench:
    rtf_cpu: float = 0.0                     # recogniser CPU seconds per second of utterance audio, one core
    rtf_wall: float = 0.0
    utterances: int = 0
    utterance_audio_s: float = 0.0
    speech_share: float = 0.0                # utterance audio per second of call (both legs)
    estimated_calls_per_core: float = 0.0    # 1 / (rtf_cpu * speech_share)
    realtime_calls_per_core: int = 0         # measured through the stack
    p50_latency_ms: float | None = None
    p99_latency_ms: float | None = None
    runs: list[TranscribeRun] = field(default_factory=list)


def _calls(seconds: float):
    calls = load_sample_calls()
    n = {c.call_id: int(min(seconds, c.duration_s) * c.sample_rate) for c in calls}
    return [(c.call_id, {leg: x[: n[c.call_id]] for leg, x in c.legs.items()}, c.metadata.get("language", "it")) for c in calls]


def _utterances(legs: dict[str, np.ndarray]):
    from workers.leg_audio import Chunk
    from workers.transcribe.segmenter import LegCutter
    out = []
    step = int(CHUNK_S * 8000)
    for leg, x in legs.items():
        cutter = LegCutter.new(leg, 1.0)
        for i, k in enumerate(range(0, len(x), step)):
            cutter.audio.push(Chunk(i, k / 8000, x[k:k + step]))
            out += cutter.cut()
        out += cutter.cut(final=True)
    return out


def recogniser_alone(seconds: float) -> TranscribeBench:
    from workers.transcribe.frontend import upsample_8k_to_16k
    from workers.transcribe.recognizer import Recognizer
    if os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {TRANSCRIBER_CORE})
    rec = Recognizer(threads=1)
    res = TranscribeBench()
    call_s = 0.0
    cpu = wall = 0.0
    rec.transcribe([upsample_8k_to_16k(np.zeros(8000, np.float32))], ["it"])   # warm-up
    for _, legs, lang in _calls(seconds):
        call_s += max(len(x) for x in legs.values()) / 8000
        for u in _utterances(legs):
            c0, w0 = time.process_time(), time.perf_counter()
            rec.transcribe([upsample_8k_to_16k(u.audio)], [lang])
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            res.utterances += 1
            res.utterance_audio_s += len(u.audio) / 8000
    res.rtf_cpu = round(cpu / res.utterance_audio_s, 4)
    res.rtf_wall = round(wall / res.utterance_audio_s, 4)
    res.speech_share = round(res.utterance_audio_s / call_s, 3)
    res.estimated_calls_per_core = round(1.0 / (res.rtf_cpu * res.speech_share), 1)
    return res


def start_transcriber(stack: LocalStack, core: int = TRANSCRIBER_CORE) -> WorkerUnderTest:
    """``callpulse transcriber`` pinned to ``core``, once its metrics endpoint answers."""
    tx = WorkerUnderTest(stack, core=core, subcommand="transcriber")
    tx.wait_ready(TRANSCRIBER_START_TIMEOUT_S)
    return tx


def run_stack(stack: LocalStack, n_calls: int, seconds: float, tag: str, log=print) -> TranscribeRun:
    tx = start_transcriber(stack)
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    keys = Keys()
    try:
        base = _calls(seconds)
        expected_per = [len(_utterances(legs)) for _, legs, _ in base]
        producer = CallProducer(stack.bootstrap_servers, linger_ms=2)
        producer.start_call(f"tx-{tag}-warm", ts=time.time())
        producer.flush()
        time.sleep(4.0)
        before = scrape(tx.port)
        b_hist, _ = histogram(before, LATENCY_METRIC)
        t0 = time.time() + 1.0
        step = int(CHUNK_S * 8000)
        schedule, ids, expected = [], [], 0
        for i in range(n_calls):
            name, legs, lang = base[i % len(base)]
            cid = f"tx-{tag}-{i}"
            ids.append(cid)
            expected += expected_per[i % len(base)]
            start = t0 + STAGGER_S * i / max(n_calls, 1)
            schedule.append((start - 0.5, cid, ("start", lang, start)))
            n = max(len(x) for x in legs.values())
            for seq, k in enumerate(range(0, n, step)):
                cap = start + k / 8000
                for leg, x in legs.items():
                    frame = AudioFrame(cid, leg, seq, cap, 8000, "pcm_s16le",
                                       (np.clip(x[k:k + step], -1, 32767 / 32768) * 32768).astype("<i2").tobytes())
                    schedule.append((cap + CHUNK_S, cid, encode_frame(frame)))
            schedule.append((start + n / 8000 + CHUNK_S, cid, ("end", lang, start + n / 8000)))
        schedule.sort(key=lambda s: s[0])
        cpu0, wall0, lag = cpu_seconds(tx.proc.pid), time.time(), 0.0
        for due, cid, what in schedule:
            wait = due - time.time()
            if wait > 0:
                producer.flush()
                time.sleep(wait)
            else:
                lag = max(lag, -wait)
            if isinstance(what, bytes):
                producer.send_raw(topics.AUDIO, cid.encode(), what)
            elif what[0] == "start":
                producer.start_call(cid, ts=what[2], language=what[1])
            else:
                producer.end_call(cid, ts=what[2])
        producer.flush()
        deadline = time.time() + DRAIN_TIMEOUT_S
        while True:
            pipe = r.pipeline(transaction=False)
            for cid in ids:
                pipe.xlen(keys.transcript(cid))
            written = sum(pipe.execute())
            if written >= expected or time.time() > deadline:
                break
            time.sleep(0.5)
        wall, cpu = time.time() - wall0, cpu_seconds(tx.proc.pid) - cpu0
        a_hist, _ = histogram(scrape(tx.port), LATENCY_METRIC)
        p50, p99 = quantile(b_hist, 0.5, a_hist), quantile(b_hist, 0.99, a_hist)
        producer.close()
        ok = written >= expected and p99 is not None and p99 <= SUSTAINED_P99_S and lag < 0.5
        run = TranscribeRun(n_calls, seconds, expected, written, ok, None if p50 is None else round(p50 * 1000),
                            None if p99 is None else round(p99 * 1000), round(cpu / wall, 3), round(lag, 3))
        log(f"  {n_calls:4d} calls: segments {written}/{expected}  p50 {run.p50_latency_ms} ms  p99 {run.p99_latency_ms} ms  "
            f"transcriber cpu {run.transcriber_cpu_utilisation:.0%}  {'sustained' if ok else 'NOT sustained'}")
        return run
    finally:
        r.close()
        tx.stop()


def run_transcribe_bench(args) -> int:
    seconds = args.seconds
    print(f"recogniser alone, one core, utterances of the sample calls (first {seconds:g} s of each):")
    res = recogniser_alone(seconds)
    print(f"  {res.utterances} utterances, {res.utterance_audio_s:.1f} s of audio: RTF {res.rtf_cpu} CPU ({res.rtf_wall} wall); "
          f"speech share {res.speech_share}; estimate {res.estimated_calls_per_core} calls per core")
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    with LocalStack() as stack:
        if args.saturate:
            lo, hi, n = 0, None, max(2, int(res.estimated_calls_per_core * 0.7))
            for i in range(5):
                run = run_stack(stack, n, seconds, f"s{i}")
                res.runs.append(run)
                if run.sustained:
                    lo = max(lo, n)
                    n = n * 2 if hi is None else (n + hi) // 2
                else:
                    hi = n
                    n = (lo + n) // 2
                if n <= lo or (hi is not None and hi - lo <= 1):
                    break
            res.realtime_calls_per_core = lo
            half = max(lo // 2, 1)
            print(f"at half the sustained load ({half} calls):")
            res.runs.append(run_stack(stack, half, seconds, "half"))
        else:
            run = run_stack(stack, args.calls, seconds, "fixed")
            res.runs.append(run)
            res.realtime_calls_per_core = args.calls if run.sustained else 0
    last = res.runs[-1]
    res.p50_latency_ms, res.p99_latency_ms = last.p50_latency_ms, last.p99_latency_ms
    print(f"\n{'rtf_cpu (one core)':34s} {res.rtf_cpu}")
    print(f"{'estimated_calls_per_core':34s} {res.estimated_calls_per_core}")
    print(f"{'realtime_calls_per_core':34s} {res.realtime_calls_per_core}   (measured through the stack)")
    print(f"{'p50 / p99 end of utterance->Redis':34s} {res.p50_latency_ms} / {res.p99_latency_ms} ms   (at {last.calls} calls; target p99 <= 2000 at half capacity)")
    out = Path(args.json).with_name(Path(args.json).stem + "-transcribe.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(asdict(res), indent=2))
    print(f"wrote {out}")
    return 0
