"""Interleaved A/B runs of two checkouts of callpulse, alternating which goes first.

  python reports/bench/ab.py drain    OLD_CHECKOUT NEW_CHECKOUT PAIRS CALLS SECONDS [OUT.json]
  python reports/bench/ab.py realtime OLD_CHECKOUT NEW_CHECKOUT PAIRS CALLS SECONDS [OUT.json]

``drain``: one worker (``AB_WORKERS=2``: two, one per core) drains a backlog (``stream.bench_capacity.drain``); ``realtime``: calls at real-time pace
(``stream.bench.run_load``). Each run starts its own broker and Redis and imports its own checkout (cwd and the
workers' PYTHONPATH); run it with a Python that has callpulse's dependencies, on an otherwise idle machine.
A checkout may carry settings for its arm's workers: ``/path/to/checkout::CALLPULSE_BATCH_WITHIN_S=0.02``.
"""
import json
import os
import subprocess
import sys

kind, old_dir, new_dir = sys.argv[1], sys.argv[2], sys.argv[3]
pairs, calls, seconds = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
out_path = sys.argv[7] if len(sys.argv) > 7 else None
RUN = {
    "drain": f"from stream.bench_capacity import drain\nr = drain({calls}, {seconds}, 500, {os.environ.get('AB_WORKERS', '1')}, log=lambda *a: None)",
    "realtime": ("from stream.localstack import LocalStack\nfrom stream.bench import run_load\n"
                 f"with LocalStack() as stack:\n    r = run_load(stack, {calls}, {seconds}, 500, 'rt', log=lambda *a: None)"),
}[kind]
SHOW = {"drain": ("drain_s", "call_seconds_per_s", "call_seconds_per_cpu_s", "cpu_utilisation", "cpu_ms_per_message"),
        "realtime": ("p50_latency_ms", "p99_latency_ms", "worker_cpu_utilisation", "sustained", "send_lag_max_s")}[kind]
code = f"import json\n{RUN}\nprint('RESULT', json.dumps(r.__dict__))\n"
out = []
for i in range(pairs):
    arms = [("old", old_dir), ("new", new_dir)]
    for name, d in (arms if i % 2 == 0 else arms[::-1]):
        d, *settings = d.split("::")
        env = {**os.environ, **dict(kv.split("=", 1) for kv in settings)}
        p = subprocess.run([sys.executable, "-c", code], cwd=d, env=env, capture_output=True, text=True)
        line = [x for x in p.stdout.splitlines() if x.startswith("RESULT")]
        if not line:
            print(name, "FAILED", p.stderr[-2000:])
            continue
        r = json.loads(line[0][len("RESULT "):])
        r["arm"] = name
        out.append(r)
        print(name, {k: r[k] for k in SHOW}, flush=True)
if out_path:
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)
