"""Bounded fuzz run of the two decoders a worker applies to untrusted input: ``stream.frame.decode_frame`` and
``stream.events.decode_event``. Inputs: random bytes, and valid frames / events mutated (bit flips, byte
overwrites, truncation, extension, header fields set to random values, JSON values swapped for odd ones).

The contract checked: decode_frame either returns a frame within the ingest contract, or raises
``FrameError`` with one of the documented reasons; decode_event either returns a ``CallEvent`` or raises
``EventError``. Anything else (another exception type, an unknown reason) is a finding, printed with the input.

    .venv/bin/python scripts/fuzz_decoders.py --inputs 1000000 --seed 1     # exit code 1 on any finding
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stream.events import CallEvent, EventError, decode_event  # noqa: E402
from stream.frame import (BYTES_PER_SAMPLE, HEADER, LEGS, MAX_CALL_ID_BYTES, MAX_CHUNK_S, MIN_CHUNK_S,  # noqa: E402
                          SAMPLE_RATES_HZ, AudioFrame, FrameError, decode_frame, encode_frame)

DOCUMENTED_REASONS = {"malformed", "bad_version", "bad_leg", "bad_encoding", "bad_sample_rate", "bad_call_id",
                      "bad_duration", "oversized", "bad_timestamp"}   # README, "Bad input"
NOW = time.time()   # seeds are captured "now", so that valid frames and events pass the time-window check
MAX_FINDINGS_SHOWN = 20
ODD_JSON = [None, True, 0, -1, 1e308, float("inf"), "", "x" * 200, [], {}, [1, 2], {"a": 1}, 2**70, "\ud800", "start", "end"]


def seed_frames(rng: random.Random) -> list[bytes]:
    out = []
    for enc, width in (("pcm_s16le", 2), ("mulaw", 1), ("alaw", 1)):
        for rate in (8000, 16000):
            for ms in (20, 200, 2000):
                n = rate * ms // 1000
                cid = rng.choice(["c", "call-1", "é" * 10, "x" * 64])
                out.append(encode_frame(AudioFrame(cid, rng.choice(["agent", "customer"]), rng.randrange(2**32), NOW - rng.random() * 60,
                                                   rate, enc, rng.randbytes(n * width))))
    return out


def seed_events() -> list[dict]:
    return [{"type": "start", "call_id": "c-1", "ts": NOW - 120, "agent_id": "a", "queue": "q", "campaign": "c",
             "language": "it", "direction": "inbound"}, {"type": "end", "call_id": "c-1", "ts": NOW - 1}]


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    op = rng.randrange(6)
    if op == 0 and b:                       # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1 and b:                     # overwrite a header byte
        b[rng.randrange(min(len(b), HEADER.size + 8))] = rng.randrange(256)
    elif op == 2:                           # truncate
        del b[rng.randrange(len(b) + 1):]
    elif op == 3:                           # extend
        b += rng.randbytes(rng.randint(1, 64))
    elif op == 4 and len(b) >= HEADER.size: # a header field set to an extreme value
        fields = list(HEADER.unpack_from(b))
        i = rng.randrange(1, len(fields))
        fields[i] = rng.choice([0, 1, 2, 3, 255, 65535, 2**31 - 1, 2**32 - 1, -1, 2**63 - 1, -(2**63)])
        try:
            HEADER.pack_into(b, 0, *fields)
        except struct.error:
            pass
    else:                                   # random bytes, sometimes behind the magic
        b = bytearray((b"CP\x01" if rng.random() < 0.5 else b"") + rng.randbytes(rng.randint(0, 300)))
    return bytes(b)


def mutate_event(rng: random.Random, event: dict) -> bytes:
    e = dict(event)
    op = rng.randrange(5)
    if op == 0:
        e[rng.choice(list(e) + ["extra"])] = rng.choice(ODD_JSON)
    elif op == 1:
        e.pop(rng.choice(list(e)), None)
    elif op == 2:                           # deep nesting, balanced or not
        depth = rng.choice([10, 1000, 100_000])
        return b"[" * depth + (b"]" * depth if rng.random() < 0.5 else b"")
    elif op == 3:
        return mutate_bytes(rng, json.dumps(e).encode())
    try:
        return json.dumps(e, allow_nan=True).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError):
        return b"{}"


def check_frame(data: bytes) -> str | None:
    """None if the contract held, else a description of the finding."""
    try:
        frame = decode_frame(data)
    except FrameError as exc:
        return None if exc.reason in DOCUMENTED_REASONS else f"undocumented reason {exc.reason!r}"
    except Exception as exc:  # noqa: BLE001 - that is the finding
        return f"{type(exc).__name__}: {exc}"
    return contract_violation(frame)


def contract_violation(frame: AudioFrame) -> str | None:
    """A decoded frame must satisfy the ingest contract it was checked against."""
    width = BYTES_PER_SAMPLE.get(frame.encoding)
    if frame.leg not in LEGS or width is None or frame.sample_rate not in SAMPLE_RATES_HZ:
        return "decoded frame with a field outside the contract"
    if not 1 <= len(frame.call_id.encode()) <= MAX_CALL_ID_BYTES:
        return "decoded frame with a bad call id"
    samples = len(frame.payload) // width
    if len(frame.payload) % width or not MIN_CHUNK_S <= samples / frame.sample_rate <= MAX_CHUNK_S:
        return "decoded frame with a bad payload length"
    return None


def check_event(data: bytes) -> str | None:
    try:
        return None if isinstance(decode_event(data), CallEvent) else "decode_event returned a non-CallEvent"
    except EventError as exc:
        return None if exc.reason in {"bad_event", "bad_timestamp"} else f"undocumented reason {exc.reason!r}"
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {str(exc)[:200]}"


def run(n: int, seed: int, log=print) -> dict:
    rng = random.Random(seed)
    frames, events = seed_frames(rng), seed_events()
    outcomes: Counter = Counter()
    findings: Counter = Counter()
    examples: dict[str, bytes] = {}
    t0 = time.perf_counter()
    for i in range(n):
        if i % 4 == 3:
            data, kind = mutate_event(rng, rng.choice(events)), "event"
            finding = check_event(data)
        else:
            data, kind = mutate_bytes(rng, rng.choice(frames)), "frame"
            finding = check_frame(data)
        outcomes[kind] += 1
        if finding:
            key = f"{kind}: {finding.split(':')[0]}"
            findings[key] += 1
            examples.setdefault(key, data[:120])
    elapsed = time.perf_counter() - t0
    result = {"inputs": n, "seed": seed, "frames": outcomes["frame"], "events": outcomes["event"], "seconds": round(elapsed, 1),
              "findings": dict(findings)}
    log(json.dumps(result))
    for key, data in list(examples.items())[:MAX_FINDINGS_SHOWN]:
        log(f"finding {key}: input {data!r}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    return 1 if run(args.inputs, args.seed)["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
