"""The ``callpulse`` command."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .settings import Settings, kafka_python_options

log = logging.getLogger("callpulse")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "bootstrap_servers", None):
        overrides["bootstrap_servers"] = args.bootstrap_servers
    if getattr(args, "redis_url", None):
        overrides["redis_url"] = args.redis_url
    return Settings(**overrides)


def cmd_worker(args: argparse.Namespace) -> int:
    from workers.agent import run_worker
    settings = _settings(args)
    if args.metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": args.metrics_port})
    sys.argv = [sys.argv[0], "worker"]   # faust's command line parser reads argv
    run_worker(settings, loglevel=args.loglevel)
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from .localstack import create_topics
    s = _settings(args)
    create_topics(s.bootstrap_servers, args.partitions or s.partitions, **kafka_python_options(s))
    print(f"topics ready on {s.bootstrap_servers}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .producer import CallProducer
    from .replay import load_call, load_sample_calls, replay
    s = _settings(args)
    with CallProducer(s.bootstrap_servers, **kafka_python_options(s)) as producer:
        while True:
            suffix = f"-{int(time.time())}"   # a new call id per pass: an ended call never takes more audio
            calls = [load_call(f, f"{Path(f.split('+')[0]).stem}{suffix}") for f in args.files] if args.files else load_sample_calls(suffix)
            sent = replay(producer, calls, speed=args.speed, chunk_ms=args.chunk_ms, encoding=args.encoding)
            print(f"replayed {len(calls)} call(s), {sent} chunks")
            if not args.loop:
                return 0


def cmd_stack(args: argparse.Namespace) -> int:
    from .localstack import LocalStack
    with LocalStack(partitions=args.partitions) as stack:
        print(f"CALLPULSE_BOOTSTRAP_SERVERS={stack.bootstrap_servers}\nCALLPULSE_REDIS_URL={stack.redis_url}", flush=True)
        _wait(args.duration)
    return 0


def _wait(duration: float | None) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait(duration if duration else None)
    except KeyboardInterrupt:
        pass


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench
    return run_bench(args)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from dashboard.server import serve_forever
    s = _settings(args)
    serve_forever(host=args.host, port=args.port, redis_url=s.redis_url, prefix=s.redis_prefix)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="callpulse", description="Real-time call-center audio analytics.")
    sub = p.add_subparsers(dest="command", required=True)

    def servers(sp):
        sp.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (env CALLPULSE_BOOTSTRAP_SERVERS)")
        sp.add_argument("--redis-url", help="Redis URL (env CALLPULSE_REDIS_URL)")

    d = sub.add_parser("demo", help="embedded broker + Redis + worker + replayed sample calls + dashboard")
    servers(d)
    d.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: until Ctrl-C)")
    d.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = real time)")
    d.add_argument("--dashboard-port", type=int, default=8080)
    d.add_argument("--metrics-port", type=int, default=9100)
    d.add_argument("--no-dashboard", action="store_true")
    d.set_defaults(func=cmd_demo)

    w = sub.add_parser("worker", help="run one worker (config from CALLPULSE_* env)")
    servers(w)
    w.add_argument("--metrics-port", type=int, default=None)
    w.add_argument("--loglevel", default="warning")
    w.set_defaults(func=cmd_worker)

    r = sub.add_parser("replay", help="stream WAV/FLAC calls (stereo = agent, customer; or AGENT+CUSTOMER) into Kafka")
    servers(r)
    r.add_argument("files", nargs="*", help="files to replay (default: the shipped sample calls)")
    r.add_argument("--speed", type=float, default=1.0, help="times real time; 0 = as fast as possible")
    r.add_argument("--chunk-ms", type=int, default=200)
    r.add_argument("--encoding", choices=("mulaw", "alaw", "pcm_s16le"), default="mulaw")
    r.add_argument("--loop", action="store_true")
    r.set_defaults(func=cmd_replay)

    t = sub.add_parser("topics", help="create the topics")
    servers(t)
    t.add_argument("action", choices=("create",))
    t.add_argument("--partitions", type=int, default=0)
    t.set_defaults(func=cmd_topics)

    st = sub.add_parser("stack", help="run only the embedded broker and Redis, print their addresses")
    st.add_argument("--partitions", type=int, default=8)
    st.add_argument("--duration", type=float, default=0)
    st.set_defaults(func=cmd_stack)

    b = sub.add_parser("bench", help="throughput, latency and memory through the real broker and worker")
    b.add_argument("--calls", type=int, default=100, help="concurrent two-leg calls")
    b.add_argument("--seconds", type=float, default=30.0, help="audio seconds per call")
    b.add_argument("--chunk-ms", type=int, default=500)
    b.add_argument("--saturate", action="store_true", help="find the most calls one worker core sustains at real time")
    b.add_argument("--json", default="artifacts/bench.json", help="where to write the machine-readable result")
    b.set_defaults(func=cmd_bench)

    from .evaluate_calls import add_parser as add_evaluate_calls
    add_evaluate_calls(sub)

    db = sub.add_parser("dashboard", help="serve the supervisor and manager dashboard")
    servers(db)
    db.add_argument("--host", default="127.0.0.1")
    db.add_argument("--port", type=int, default=8080)
    db.set_defaults(func=cmd_dashboard)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("CALLPULSE_LOGLEVEL", "WARNING").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
