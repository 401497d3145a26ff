"""``callpulse demo``: the whole product on one machine.

Starts (on 127.0.0.1 only) the embedded broker and Redis unless external ones are given, creates the
topics, starts a worker and the dashboard as child processes, replays the shipped sample calls in a loop at
real-time pace, prints where to look and a live table of active calls, and on Ctrl-C (or after
``--duration``) stops everything it started.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

from .localstack import LOOPBACK, LocalStack, _die_with_parent, create_topics, free_port
from .producer import CallProducer
from .redis_keys import Keys
from .replay import load_sample_calls, replay
from .settings import Settings

TABLE_EVERY_S = 10.0
REPLAY_STOP_S = 10.0    # the replay's producer flushes what it sent while the broker still runs
DEFAULT_DASHBOARD_PORT = 8080
DEFAULT_METRICS_PORT = 9100


def port_free(port: int) -> bool:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
            return True
        except OSError:
            return False


def choose_port(asked: int | None, default: int, what: str) -> int:
    """A port the user asked for must be free (else ``SystemExit`` with one line, before anything starts);
    the default is used when free, else any free port."""
    if asked:
        if not port_free(asked):
            raise SystemExit(f"callpulse demo: {what} port {asked} on {LOOPBACK} is in use; pick another (--{what}-port) or leave it out")
        return asked
    return default if port_free(default) else free_port()


def _child(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)


def _port_open(port: int) -> bool:
    import socket
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.3):
            return True
    except OSError:
        return False


def print_active_calls(r: redis.Redis, keys: Keys, limit: int = 10) -> int:
    ids = r.zrevrange(keys.active, 0, limit - 1)
    if not ids:
        return 0
    pipe = r.pipeline(transaction=False)
    for cid in ids:
        pipe.hmget(keys.call(cid), "duration_s", "customer_sentiment_avg", "customer_emotion", "agent_sentiment_avg",
                   "overtalk_s", "longest_silence_s", "alerts_open", "risk", "queue")
    rows = pipe.execute()
    print(f"\n{'call':28s} {'queue':10s} {'dur s':>6s} {'cust sent':>9s} {'cust emotion':12s} {'agent sent':>10s} {'overtalk':>8s} {'max sil':>7s} {'alerts':>6s} {'risk':>5s}")
    for cid, row in zip(ids, rows):
        dur, cs, ce, ag, ot, sil, al, risk, q = [x or "" for x in row]
        print(f"{cid[:28]:28s} {q[:10]:10s} {dur:>6s} {cs[:6]:>9s} {ce[:12]:12s} {ag[:6]:>10s} {ot:>8s} {sil:>7s} {al:>6s} {risk:>5s}")
    return len(ids)


def run_demo(args) -> int:
    env_settings = Settings()
    dashboard_port = choose_port(args.dashboard_port, DEFAULT_DASHBOARD_PORT, "dashboard")
    metrics_port = choose_port(args.metrics_port, DEFAULT_METRICS_PORT, "metrics")
    bootstrap = args.bootstrap_servers or os.environ.get("CALLPULSE_BOOTSTRAP_SERVERS")
    redis_url = args.redis_url or os.environ.get("CALLPULSE_REDIS_URL")
    stack = None
    replayer: threading.Thread | None = None
    children: list[subprocess.Popen] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logdir = Path(os.environ.get("CALLPULSE_DEMO_LOGDIR", "/tmp")) / f"callpulse-demo-{os.getpid()}"
    logdir.mkdir(parents=True, exist_ok=True)
    try:
        if bootstrap:
            create_topics(bootstrap, env_settings.partitions, app_id=env_settings.app_id)
            print(f"external Kafka           {bootstrap}")
        if not bootstrap or not redis_url:   # embedded servers only for what was not given
            stack = LocalStack(partitions=env_settings.partitions, logdir=str(logdir), broker="tansu" if not bootstrap else "none").start()
            if not bootstrap:
                bootstrap = stack.bootstrap_servers
                print(f"embedded broker (tansu)  {bootstrap}")
        if redis_url:
            print(f"external Redis           {redis_url}")
        else:
            redis_url = stack.redis_url
            print(f"embedded Redis (Valkey)  {redis_url}")
        env = {**os.environ, "CALLPULSE_BOOTSTRAP_SERVERS": bootstrap, "CALLPULSE_REDIS_URL": redis_url,
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
        children.append(_child([sys.executable, "-m", "stream.cli", "worker", "--metrics-port", str(metrics_port)], env, logdir / "worker.log"))
        print(f"worker metrics           http://{LOOPBACK}:{metrics_port}/metrics")
        tx_port = _start_transcriber(children, env, logdir)
        if tx_port:
            print(f"transcriber metrics      http://{LOOPBACK}:{tx_port}/metrics   (live transcripts in the drill-down)")
        if not args.no_dashboard:
            try:
                import dashboard  # noqa: F401
                user, password = "demo", secrets.token_urlsafe(9)
                denv = {**env, "CALLPULSE_DASHBOARD_USER": user, "CALLPULSE_DASHBOARD_PASSWORD": password}
                children.append(_child([sys.executable, "-m", "stream.cli", "dashboard", "--port", str(dashboard_port)], denv, logdir / "dashboard.log"))
                print(f"dashboard                http://{LOOPBACK}:{dashboard_port}/   (user {user}, password {password})")
            except ImportError:
                print("dashboard                not installed in this build")
        print(f"logs                     {logdir}\nreplaying the sample calls at {args.speed:g}x real time; Ctrl-C stops everything\n", flush=True)

        replayer = threading.Thread(target=_replay_loop, args=(bootstrap, args.speed, stop), daemon=True)
        replayer.start()
        r = redis.Redis.from_url(redis_url, decode_responses=True)
        keys = Keys(env_settings.redis_prefix)
        deadline = time.monotonic() + args.duration if args.duration else None
        next_table = time.monotonic() + 5
        while not stop.is_set():
            if deadline and time.monotonic() >= deadline:
                break
            for child in children:
                if child.poll() is not None:
                    raise RuntimeError(f"a demo process exited with code {child.returncode}: {child.args[3:5]}; see {logdir}")
            if time.monotonic() >= next_table:
                if not print_active_calls(r, keys):
                    print("waiting for the first analysed second of audio ...")
                next_table = time.monotonic() + TABLE_EVERY_S
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if replayer is not None:
            replayer.join(REPLAY_STOP_S)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        if stack is not None:
            stack.stop()
        embedded = ["broker"] * bool(stack and stack.broker == "tansu") + ["Redis"] * bool(stack)
        print("\nstopped: worker, dashboard" + (f", {' and '.join(embedded)}" if embedded else ""))
    return 0


def _start_transcriber(children: list, env: dict[str, str], logdir: Path) -> int | None:
    """Transcripts are on in the demo (the tier keeps up with the sample calls on one core: README, "Transcripts")
    unless CALLPULSE_TRANSCRIPTS_ENABLED=false or the 'transcribe' extra is not installed."""
    from workers.transcribe.settings import TranscriberSettings
    if not TranscriberSettings().transcripts_enabled:
        print("transcriber              off (CALLPULSE_TRANSCRIPTS_ENABLED=false)")
        return None
    try:
        import ctranslate2  # noqa: F401
        from workers.transcribe.model_files import model_dir
        model_dir()   # joins and verifies the model once, before the child starts
    except Exception as exc:   # the optional extra: the demo runs without it
        print(f"transcriber              off ({exc.__class__.__name__}: install the 'transcribe' extra for live transcripts)")
        return None
    port = free_port()
    children.append(_child([sys.executable, "-m", "stream.cli", "transcriber", "--metrics-port", str(port)], env, logdir / "transcriber.log"))
    return port


def _replay_loop(bootstrap: str, speed: float, stop: threading.Event) -> None:
    loop = 0
    with CallProducer(bootstrap) as producer:
        while not stop.is_set():
            calls = load_sample_calls(f"-{loop}")
            replay(producer, calls, speed=speed, stop=stop.is_set)
            loop += 1
