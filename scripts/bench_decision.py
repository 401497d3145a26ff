"""CPU cost of the alert decision logic per call-level step: the evidence update of both legs plus the rule engine
with the shipped rules, on realistic per-step inputs (a customer talking in turns, an agent answering).

    python scripts/bench_decision.py [--calls 250] [--steps 600]

Prints microseconds per step and the share of one core that the decision logic takes at ``--calls`` concurrent
calls (each call makes one step per second of audio, ``hop_s`` = 1 s). The model inference, VAD and Redis writes
are not included: ``callpulse bench`` measures the whole worker."""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from stream.redis_keys import LEGS
from workers.evidence import CallEvidence
from workers.rules import RuleEngine, RuleSet

RULES = Path(__file__).resolve().parents[1] / "workers" / "default_rules.yaml"
LABELS = ("angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised")


def script(steps: int, rng: random.Random) -> list[dict]:
    out = []
    for k in range(steps):
        turn = (k // 6) % 2      # 6 s turns, alternating
        row = {}
        for i, leg in enumerate(LEGS):
            talking = turn == i and k % 6 != 5
            if not talking:
                row[leg] = {"speech": 0.0, "cap": None, "loud": None}
                continue
            p = [rng.random() for _ in LABELS]
            s = sum(p)
            row[leg] = {"speech": round(rng.uniform(0.3, 1.0), 2), "cap": None, "loud": -20.0, "s": rng.uniform(-1, 1),
                        "e": {lab: round(v / s, 4) for lab, v in zip(LABELS, p)}}
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=250)
    ap.add_argument("--steps", type=int, default=600, help="steps (seconds of audio) per simulated call")
    ap.add_argument("--repeat", type=int, default=20, help="calls simulated")
    args = ap.parse_args()
    ruleset = RuleSet.load(RULES)
    cfg, rng = ruleset.evidence, random.Random(1)
    inputs = [script(args.steps, rng) for _ in range(args.repeat)]
    engine = RuleEngine(ruleset)
    t0 = time.perf_counter()
    n = 0
    for c, rows in enumerate(inputs):
        ev, cid = CallEvidence(LEGS), f"c{c}"
        for k, info in enumerate(rows):
            t = float(k + 1)
            m = {"silence_run_s": 0.0, "overtalk_step_s": 0.0}
            m.update(ev.step(t, info, cfg, 1.0))
            engine.evaluate(cid, t, t, m, lambda name: ev.details(cfg).get(name))
            engine.export_state(cid)    # the pipeline saves the rule state after every step
            n += 1
    per_step_s = (time.perf_counter() - t0) / n
    share = per_step_s * args.calls    # steps per second at args.calls calls = args.calls
    print(json.dumps({"steps": n, "us_per_step": round(per_step_s * 1e6, 2), "calls": args.calls,
                      "core_share_at_calls": round(share, 4)}, indent=1))


if __name__ == "__main__":
    main()
