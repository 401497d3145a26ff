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
    settings = _check_broker(settings)
    sys.argv = [sys.argv[0], "worker"]   # faust's command line parser reads argv
    run_worker(settings, loglevel=args.loglevel)
    return 0


BROKER_WAIT_LOG_EVERY_S = 10.0


def _check_broker(settings: Settings) -> Settings:
    """Before the worker starts: wait (saying so) for the broker, check the topics (exits with a clear line
    when they are missing or do not fit), and settle whether the output producer can be idempotent."""
    import asyncio

    from .app import broker_supports_idempotence
    from .topic_admin import TopicsError, check_topics
    opts = kafka_python_options(settings)
    while True:
        try:
            partitions = check_topics(settings.bootstrap_servers, settings.app_id, **opts)
            break
        except ConnectionError as exc:
            log.warning("waiting for Kafka: %s; retrying", exc)
            time.sleep(1.0)
        except TopicsError as exc:
            raise SystemExit(f"callpulse worker: {exc}") from None
    if partitions != settings.partitions:
        log.warning("calls.audio has %d partitions, CALLPULSE_PARTITIONS says %d: using the topics as they are", partitions, settings.partitions)
    if settings.producer_idempotence == "auto":
        ok = asyncio.run(broker_supports_idempotence(settings))
        log.info("idempotent output producer: %s", "yes" if ok else "not supported by this broker")
        settings = settings.model_copy(update={"producer_idempotence": "true" if ok else "false"})
    return settings


def cmd_transcriber(args: argparse.Namespace) -> int:
    from workers.transcribe.agent import run_transcriber
    from workers.transcribe.settings import TranscriberSettings
    sys.argv = [sys.argv[0], "worker"]   # faust's command line parser reads argv
    return run_transcriber(_settings(args), TranscriberSettings(), metrics_port=args.metrics_port, loglevel=args.loglevel)


def cmd_topics(args: argparse.Namespace) -> int:
    from .topic_admin import create_topics
    s = _settings(args)
    try:
        created = create_topics(s.bootstrap_servers, args.partitions or s.partitions, replication_factor=args.replication_factor,
                                min_insync_replicas=args.min_insync_replicas, app_id=s.app_id, **kafka_python_options(s))
    except (ConnectionError, ValueError) as exc:
        print(f"callpulse topics: {exc}", file=sys.stderr)
        return 2
    print(f"topics ready on {s.bootstrap_servers}" + (f" (created {', '.join(created)})" if created else " (all existed)"))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .producer import CallProducer
    from .replay import load_call, load_sample_calls, replay

    def load(suffix: str):
        if not args.files:
            return load_sample_calls(suffix)
        return [load_call(f, f"{Path(f.split('+')[0]).stem}{suffix}") for f in args.files]

    s = _settings(args)
    try:
        calls = load(f"-{int(time.time())}")   # read and check every file before touching the broker
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"callpulse replay: {exc}", file=sys.stderr)
        return 2
    try:
        producer = CallProducer(s.bootstrap_servers, **kafka_python_options(s))
    except ConnectionError as exc:
        print(f"callpulse replay: {exc}", file=sys.stderr)
        return 2
    with producer:
        while True:
            sent = replay(producer, calls, speed=args.speed, chunk_ms=args.chunk_ms, encoding=args.encoding)
            print(f"replayed {len(calls)} call(s), {sent} chunks")
            if not args.loop:
                return 0
            calls = load(f"-{int(time.time())}")   # a new call id per pass: an ended call never takes more audio


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
    d.add_argument("--dashboard-port", type=int, default=None, help="default 8080, or a free port when 8080 is taken")
    d.add_argument("--metrics-port", type=int, default=None, help="default 9100, or a free port when 9100 is taken")
    d.add_argument("--no-dashboard", action="store_true")
    d.set_defaults(func=cmd_demo)

    w = sub.add_parser("worker", help="run one worker (config from CALLPULSE_* env)")
    servers(w)
    w.add_argument("--metrics-port", type=int, default=None)
    w.add_argument("--loglevel", default="warning")
    w.set_defaults(func=cmd_worker)

    tr = sub.add_parser("transcriber", help="run one transcriber (Whisper-base, own consumer group; needs the 'transcribe' extra)")
    servers(tr)
    tr.add_argument("--metrics-port", type=int, default=None, help="default CALLPULSE_TRANSCRIBER_METRICS_PORT (9101)")
    tr.add_argument("--loglevel", default="warning")
    tr.set_defaults(func=cmd_transcriber)

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
    t.add_argument("--partitions", type=int, default=0, help="per topic (default CALLPULSE_PARTITIONS); at least the number of workers")
    t.add_argument("--replication-factor", type=int, default=1, help="3 in production")
    t.add_argument("--min-insync-replicas", type=int, default=0,
                   help="replicas that must have a write before it counts (with acks=all); 2 with replication factor 3; 0 = broker default")
    t.set_defaults(func=cmd_topics)

    st = sub.add_parser("stack", help="run only the embedded broker and Redis, print their addresses")
    st.add_argument("--partitions", type=int, default=8)
    st.add_argument("--duration", type=float, default=0)
    st.set_defaults(func=cmd_stack)

    b = sub.add_parser("bench", help="capacity, latency and memory of one worker core, through the real broker and Redis")
    b.add_argument("--backlog-calls", type=int, default=200, help="calls in the backlog the worker drains (capacity)")
    b.add_argument("--backlog-seconds", type=float, default=30.0, help="audio seconds per call in the backlog")
    b.add_argument("--calls", type=int, default=0, help="calls of the real-time latency run (default: half the capacity)")
    b.add_argument("--seconds", type=float, default=20.0, help="audio seconds per call of the real-time run")
    b.add_argument("--broker", choices=["tansu", "apache_kafka"], default="tansu",
                   help="the real-time run's broker (apache_kafka: the jars of scripts/fetch_kafka.sh)")
    b.add_argument("--chunk-ms", type=int, default=500)
    b.add_argument("--no-scaleout", action="store_true", help="skip the two-worker drain")
    b.add_argument("--profile", action="store_true", help="sample the draining worker with py-spy and print its top functions")
    b.add_argument("--inference-seconds", type=float, default=5.0, help="how long to time the models alone")
    b.add_argument("--saturate", action="store_true", help="instead: search the most calls sustained at real-time pace")
    b.add_argument("--json", default="artifacts/bench.json", help="where to write the machine-readable result")
    b.add_argument("--transcribe", action="store_true", help="the transcription tier's figures instead (RTF, calls per core, utterance latency)")
    b.add_argument("--tier-ab", action="store_true", help="with --transcribe: the worker's capacity with and without a transcriber on the same stream")
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
