"""``callpulse evaluate-calls DIR``: alerts and per-segment scores on a folder of labelled two-leg calls.

    callpulse evaluate-calls /work/calls/test_heldout --speed 8            # embedded broker, worker and Redis
    callpulse evaluate-calls /work/calls/dev --in-process                  # Pipeline directly: fast, for tuning
    callpulse evaluate-calls stream/samples/eval --compare                 # both, and check they agree

DIR holds ``calls.json`` and the calls' stereo WAV/FLAC files (README, "Call-level evaluation"). Writes
``report.json`` (per call and overall), ``steps.jsonl`` (in-process: every rule evaluation's metrics, for offline
re-runs), ``timeline-<call>.png`` and ``sweep.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .call_metrics import ESCALATION, score_calls
from .settings import Settings

FORMAT = "callpulse-calls/1"
DEFAULT_OUT = Path("artifacts/evaluate-calls")


def read_call_set(folder: Path) -> list[dict]:
    """The calls of ``folder/calls.json``: a list of calls or {"calls": [...]}; each needs call_id, file,
    duration_s and segments (leg, emotion, start_s, end_s)."""
    path = folder / "calls.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: DIR must hold calls.json and the call audio (README, 'Call-level evaluation')")
    doc = json.loads(path.read_text())
    calls = doc["calls"] if isinstance(doc, dict) else doc
    for i, c in enumerate(calls):
        missing = [k for k in ("call_id", "file", "duration_s", "segments") if k not in c]
        if missing:
            raise ValueError(f"{path}: call #{i + 1} lacks {missing}")
        for s in c["segments"]:
            if s.get("leg") not in ("agent", "customer") or not {"emotion", "start_s", "end_s"} <= s.keys():
                raise ValueError(f"{path}: call {c['call_id']!r}: a segment needs leg (agent|customer), emotion, start_s, end_s; got {s}")
        if c.get("type") == ESCALATION and c.get("first_angry_customer_s") is None:
            angry = [s["start_s"] for s in c["segments"] if s["leg"] == "customer" and s["emotion"] == "angry"]
            c["first_angry_customer_s"] = min(angry) if angry else None
        if not (folder / c["file"]).exists():
            raise FileNotFoundError(f"{folder / c['file']} (call {c['call_id']!r}) not found")
    return calls


def escalation_rules(ruleset, names: list[str] | None) -> set[str]:
    """The rules whose alerts count as "the customer is escalating": given, or every customer-leg rule."""
    known = {r.name for r in ruleset.rules}
    if names:
        unknown = set(names) - known
        if unknown:
            raise ValueError(f"--alert-rules {sorted(unknown)}: not in the rule set (have {sorted(known)})")
        return set(names)
    return {r.name for r in ruleset.rules if r.leg == "customer"}


def _write_steps(path: Path, steps: dict[str, list]) -> None:
    with open(path, "w") as f:
        for call_id, seq in steps.items():
            for t, at, metrics in seq:
                f.write(json.dumps({"call_id": call_id, "t": t, "at": at, "metrics": metrics}, separators=(",", ":")) + "\n")


def compare_runs(calls: list[dict], a: dict, b: dict) -> dict:
    """Call by call: do two runs agree on the alerts and on the timeline?"""
    from .call_sweep import alert_key, timeline_key
    same = {c["call_id"]: alert_key(a[c["call_id"]]["alerts"]) == alert_key(b[c["call_id"]]["alerts"]) for c in calls}
    same_steps = {c["call_id"]: timeline_key(a[c["call_id"]]["timeline"]) == timeline_key(b[c["call_id"]]["timeline"]) for c in calls}
    return {"calls_with_identical_alerts": sum(same.values()), "calls": len(same),
            "calls_with_identical_timelines": sum(same_steps.values()),
            "differ": sorted(k for k in same if not (same[k] and same_steps[k]))}


def headline(report: dict) -> dict:
    """The one line printed at the end."""
    o = report["overall"]
    keys = ("escalation_recall", "calm_flagged_share", "non_escalation_flagged_share", "false_alarms_per_hour_calm",
            "seconds_to_alert_median", "seconds_to_alert_p90", "double_opens")
    line = {"mode": report["mode"], **{k: o[k] for k in keys},
            "customer_emotion_ua": o["segments"]["emotion_balanced_accuracy"],
            "customer_sentiment_ua": o["segments"]["sentiment_balanced_accuracy"]}
    if "compare" in report:
        line["compare"] = report["compare"]
    if "truncated_calls" in report:
        line["truncated_calls"] = len(report["truncated_calls"])
    return line


def run_evaluate_calls(args: argparse.Namespace) -> int:
    from workers.inference import Models
    from workers.rules import RuleEngine, RuleSet

    from .call_runs import default_rules_path, load_calls, run_in_process, run_stack, truncated_calls
    from .call_sweep import alert_key, rerun, sweep
    folder = Path(args.dir)
    calls = read_call_set(folder)
    if args.calls:
        calls = [c for c in calls if c["call_id"] in set(args.calls)]
    # absolute: the worker subprocess runs in the repository root, not in the caller's folder
    settings = Settings(**{k: str(Path(v).resolve()) for k, v in (("model_dir", args.model_dir), ("rules_path", args.rules)) if v})
    ruleset = RuleSet.load(default_rules_path(settings))
    rules = escalation_rules(ruleset, args.alert_rules)
    models = Models.for_settings(settings)   # its labels decide which emotions are scored
    labels = tuple(models.emotion.labels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    audio = load_calls(folder, calls)
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    report: dict = {"dir": str(folder), "calls": len(calls), "rules_path": default_rules_path(settings),
                    "model_dir": settings.model_dir or f"(shipped: {settings.model_profile})", "model_version": models.emotion.info.version, "emotion_labels": list(labels), "speed": args.speed}
    results, steps = None, None
    t0 = time.perf_counter()
    if args.in_process or args.compare:
        results, steps = run_in_process(audio, settings, models, RuleEngine(ruleset), args.chunk_ms, args.encoding, say)
        report["mode"] = "in-process"
        _write_steps(out / "steps.jsonl", steps)
    if not args.in_process:
        stack_results = run_stack(audio, settings, args.bootstrap_servers, args.redis_url, args.speed, args.chunk_ms,
                                  args.encoding, start_worker=not args.no_worker, concurrency=args.concurrency, progress=say)
        report["truncated_calls"] = truncated_calls(calls, stack_results)
        if report["truncated_calls"]:
            print(f"warning: {len(report['truncated_calls'])} call(s) ended before their audio did (the worker fell behind): "
                  "lower --speed or --concurrency", file=sys.stderr)
        if results is not None:
            report["compare"] = compare_runs(calls, results, stack_results)
            report["in_process"] = score_calls(calls, results, rules, settings.window_s, labels)["overall"]
        results, report["mode"] = stack_results, "stack (+ in-process comparison)" if args.compare else "stack"
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report.update(score_calls(calls, results, rules, settings.window_s, labels))
    if steps is not None:
        if report["mode"] == "in-process":   # the offline re-run of the recorded steps must give the run's own alerts
            again = rerun(ruleset, steps)
            report["rerun_reproduces_run"] = all(alert_key(again.get(c["call_id"], [])) == alert_key(results[c["call_id"]]["alerts"]) for c in calls)
        if args.sweep_rule in {r.name for r in ruleset.rules}:
            report["sweep"] = sweep(calls, steps, ruleset, args.sweep_rule, rules, args.sweep_values)
        else:
            report["sweep"] = f"no rule {args.sweep_rule!r} in the rule set: no sweep"
    _plots(args, calls, results, rules, report, out)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"out": str(out / "report.json"), **headline(report)}))
    return 0


def _plots(args, calls, results, rules, report, out: Path) -> None:
    from .call_plots import plot_call, plot_sweep, plots_available
    why = plots_available()
    if why or args.no_plots:
        report["plots"] = why or "disabled (--no-plots)"
        if why:
            print(why, file=sys.stderr)
        return
    pick = args.plot_call or next((c["call_id"] for c in calls if c.get("type") == ESCALATION), calls[0]["call_id"])
    call = next((c for c in calls if c["call_id"] == pick), None)
    if call is None:
        raise ValueError(f"--plot-call {pick!r}: no such call in {args.dir}")
    files = [str(plot_call(call, results[pick], rules, out / f"timeline-{pick}.png"))]
    if isinstance(report.get("sweep"), dict):
        files.append(str(plot_sweep(report["sweep"], out / "sweep.png")))
    report["plots"] = files


def add_parser(sub) -> None:
    e = sub.add_parser("evaluate-calls", help="alerts and per-segment scores on a folder of labelled two-leg calls",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("dir", help="folder with calls.json and the call audio")
    e.add_argument("--bootstrap-servers", help="external Kafka (default: start the embedded broker)")
    e.add_argument("--redis-url", help="external Redis (default: start the embedded Valkey)")
    e.add_argument("--no-worker", action="store_true", help="do not start a worker: one already consumes from --bootstrap-servers")
    e.add_argument("--in-process", action="store_true", help="feed the frames to workers.pipeline.Pipeline directly (no broker, no Redis)")
    e.add_argument("--compare", action="store_true", help="run both ways and report whether the alerts agree call by call")
    e.add_argument("--speed", type=float, default=8.0, help="replay speed, times real time (0: as fast as possible)")
    e.add_argument("--concurrency", type=int, default=8, help="calls replayed at the same time (stack mode)")
    e.add_argument("--chunk-ms", type=int, default=200)
    e.add_argument("--encoding", choices=("mulaw", "alaw", "pcm_s16le"), default="mulaw")
    e.add_argument("--model-dir", help="ONNX models to judge (env CALLPULSE_MODEL_DIR; default: the shipped ones)")
    e.add_argument("--rules", help="alert rules YAML (env CALLPULSE_RULES_PATH; default: workers/default_rules.yaml)")
    e.add_argument("--alert-rules", nargs="+", help="rules whose alerts mean 'escalating' (default: every customer-leg rule)")
    e.add_argument("--calls", nargs="+", help="only these call ids")
    e.add_argument("--sweep-rule", default="customer_anger", help="rule whose threshold the sweep moves (in-process runs)")
    e.add_argument("--sweep-values", type=float, nargs="+", help="thresholds to sweep (default: 0.25x..2x the configured one)")
    e.add_argument("--plot-call", help="call id whose timeline to plot (default: the first escalation)")
    e.add_argument("--no-plots", action="store_true")
    e.add_argument("--out", default=str(DEFAULT_OUT), help="folder for report.json, steps.jsonl and the plots")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=run_evaluate_calls)
