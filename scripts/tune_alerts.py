"""Choose the alert defaults on training-fold calls and report them, unchanged, on held-out ones.

    # 1. score every call once (the real worker core in-process: decode, VAD, models, pairing)
    python scripts/tune_alerts.py capture /work/calls/dev --model-dir M --out dev.scores.json
    # 2. fit the calibration and search the evidence parameters on those scores only; writes a rules file
    python scripts/tune_alerts.py tune dev.scores.json --rules workers/default_rules.yaml --out tuned.yaml
    # 3. the chosen rules on other scores, with no change
    python scripts/tune_alerts.py report test.scores.json --rules tuned.yaml

A calls folder holds ``calls.json`` (a list of calls: ``file``, ``call_id``, ``type``, ``segments`` with ``leg``,
``emotion``, ``start_s``, ``end_s``) and the stereo audio (left agent, right customer), as ``callpulse
evaluate-calls`` reads it. Steps 2 and 3 replay only the decision logic (``workers.evidence`` and
``workers.rules``, exactly as the pipeline calls them) over the captured per-step scores, so a parameter search
costs no inference (``stream.alert_tuning``). An escalation counts as caught when one of ``CAUGHT_BY`` opens at or after the start of the
customer's first angry segment; any of them opening on a calm call flags it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from stream import topics
from stream.alert_tuning import score, tune
from stream.events import CallEvent
from stream.frame import AudioFrame, encode_frame
from stream.redis_keys import LEGS
from stream.replay import load_call
from stream.settings import Settings
from workers.audio import encode_mulaw, to_analysis_rate
from workers.evidence import CallEvidence
from workers.metrics import WorkerMetrics
from workers.pipeline import Pipeline, Record
from workers.rules import RuleSet

CHUNK_S = 0.2


def capture(calls_dir: Path, model_dir: str | None) -> list[dict]:
    from workers.inference import Models
    models = Models(model_dir)
    manifest = json.loads((calls_dir / "calls.json").read_text())
    if isinstance(manifest, dict):
        manifest = manifest.get("calls", [])
    rows: list[tuple[float, dict]] = []
    orig = CallEvidence.step

    def spy(self, t, info, cfg, hop_s):
        rows.append((t, {leg: (dict(i) if i else None) for leg, i in info.items()}))
        return orig(self, t, info, cfg, hop_s)

    CallEvidence.step = spy
    out = []
    try:
        for entry in manifest:
            call = load_call(str(calls_dir / entry["file"]), entry["call_id"])
            rows.clear()
            p = Pipeline(Settings(), models, models.emotion.labels, WorkerMetrics(CollectorRegistry()))
            cid = call.call_id
            recs = [Record(topics.EVENTS, cid.encode(), CallEvent(type="start", call_id=cid, ts=0.0, queue="q").to_bytes())]
            legs = {leg: to_analysis_rate(x, call.sample_rate) for leg, x in call.legs.items()}
            n = int(CHUNK_S * 8000)
            for seq, i in enumerate(range(0, len(legs["agent"]), n)):
                for leg in LEGS:
                    x = legs[leg][i:i + n]
                    if len(x) >= 80:
                        recs.append(Record(topics.AUDIO, cid.encode(), encode_frame(AudioFrame(cid, leg, seq, i / 8000, 8000, "mulaw", encode_mulaw(x)))))
            recs.append(Record(topics.EVENTS, cid.encode(), CallEvent(type="end", call_id=cid, ts=call.duration_s).to_bytes()))
            for k in range(0, len(recs), 64):
                p.process(recs[k:k + 64])
            steps = [[t, {leg: _slim(i) for leg, i in info.items()}] for t, info in rows]
            out.append({"call_id": cid, "type": entry.get("type", ""), "segments": entry["segments"], "steps": steps,
                        "meta": {k: v for k, v in entry.items() if k not in ("segments",)}})
            print(f"captured {cid} ({entry.get('type', '')}): {len(steps)} steps", file=sys.stderr)
    finally:
        CallEvidence.step = orig
    return out


def _slim(i: dict | None) -> dict | None:
    if not i:
        return None
    d = {"speech": i["speech"], "cap": None, "loud": None, "pause": i.get("pause")}
    if "e" in i:
        d.update(e=i["e"], s=i["s"], avg=i["avg"])
    return d


def apply_to_file(path: Path, chosen: dict, how: str) -> None:
    """Write the chosen evidence section and rule thresholds into a commented rules file, keeping its comments."""
    import re
    text = path.read_text()
    ev = chosen["evidence"]
    block = ["evidence:", f"  # chosen by: {how}",
             f"  baseline_windows: {ev.get('baseline_windows', 8)}      # the leg's baseline: its first well-voiced windows",
             f"  warmup_windows: {ev.get('warmup_windows', 4)}         # before that many, prior_baseline stands in",
             "  calibration:",
             f"    fitted_on: {json.dumps(ev['calibration']['fitted_on'])}",
             f"    angry: {{a: {ev['calibration']['angry']['a']}, b: {ev['calibration']['angry']['b']}}}      # on logit(P(angry))",
             f"    negative: {{a: {ev['calibration']['negative']['a']}, b: {ev['calibration']['negative']['b']}}}   # on the sentiment score"]
    for sig in ("anger", "negative"):
        block.append(f"  {sig}: " + "{" + ", ".join(f"{k}: {v}" for k, v in ev.get(sig, {}).items()) + "}")
    text = re.sub(r"(?ms)^evidence:\n.*?(?=^rules:)", "\n".join(block) + "\n", text)
    for rule in chosen["rules"]:
        pattern = rf"(?ms)(^  - name: {rule['name']}\n.*?^    threshold: )([^\n]+)"
        text = re.sub(pattern, lambda m: m.group(1) + f"{rule['threshold']:g}", text, count=1)
        for c in rule.get("also", []):
            pattern = rf"(?ms)(^  - name: {rule['name']}\n.*?^      - {{metric: {c['metric']}, op: \"{c['op']}\", threshold: )([^}}]+)"
            text = re.sub(pattern, lambda m: m.group(1) + f"{c['threshold']:g}", text, count=1)
    RuleSet.from_yaml(text, str(path))      # still valid
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture")
    c.add_argument("calls_dir", type=Path)
    c.add_argument("--model-dir", default=None)
    c.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("tune")
    t.add_argument("scores", type=Path)
    t.add_argument("--rules", type=Path, default=Path("workers/default_rules.yaml"))
    t.add_argument("--fitted-on", default="")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--extra", type=Path, help="captured scores of further training-fold calls that must behave (not scored)")
    t.add_argument("--must-catch", nargs="*", default=[], help="call ids in --extra that must raise an escalation alert")
    t.add_argument("--must-quiet", nargs="*", default=[], help="call ids in --extra that must raise none")
    t.add_argument("--apply", type=Path, help="also write the choice into this commented rules file (keeps comments)")
    r = sub.add_parser("report")
    r.add_argument("scores", type=Path, nargs="+")
    r.add_argument("--rules", type=Path, default=Path("workers/default_rules.yaml"))
    r.add_argument("--per-call", action="store_true")
    a = ap.parse_args(argv)
    if a.cmd == "capture":
        a.out.write_text(json.dumps(capture(a.calls_dir, a.model_dir)))
    elif a.cmd == "tune":
        calls = json.loads(a.scores.read_text())
        doc = yaml.safe_load(a.rules.read_text())
        extra = json.loads(a.extra.read_text()) if a.extra else None
        best, result, n = tune(calls, doc, a.fitted_on or str(a.scores), extra=extra, catch=set(a.must_catch), quiet=set(a.must_quiet))
        a.out.write_text(yaml.safe_dump(best, sort_keys=False))
        print(json.dumps({"chosen": result, "combinations": n}, indent=1))
        if a.apply:
            how = f"scripts/tune_alerts.py tune {a.scores.name}: recall {result['recall']}, calm flagged {result['calm_flagged']}, non-escalation flagged {result['non_escalation_flagged']}"
            apply_to_file(a.apply, best, how)
    else:
        rs = RuleSet.load(a.rules)
        for path in a.scores:
            res = score(json.loads(path.read_text()), rs)
            if not a.per_call:
                res.pop("per_call")
            print(path, json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
