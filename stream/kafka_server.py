"""Apache Kafka itself, in KRaft mode, from the jars ``scripts/fetch_kafka.sh`` puts in ``.cache/kafka``: one node
or a small cluster on free 127.0.0.1 ports, its log on disk in a folder of your choice, for the tests (the
``apache_kafka`` marker) and for running the stack on real Kafka locally::

    bash scripts/fetch_kafka.sh && python -m stream.kafka_server --port 9092 --data-dir kafka-data

Every node is a combined broker + controller (``process.roles=broker,controller``) with a static quorum.
Nodes get PR_SET_PDEATHSIG, so a killed parent leaves no JVM behind.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .localstack import LOOPBACK, _die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[1]
KAFKA_VERSION = os.environ.get("CALLPULSE_KAFKA_VERSION", "4.4.0")
FETCH_SCRIPT = ROOT / "scripts" / "fetch_kafka.sh"
# A single test broker needs little heap; C1 only and the serial collector start the JVM faster on 2 cores.
JVM_OPTIONS = ("-Xms64m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true")
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
LOG4J2 = """rootLogger.level=WARN
rootLogger.appenderRef.out.ref=OUT
appender.out.type=Console
appender.out.name=OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
"""


_TEMPLATES: dict[str, tuple[Path, str]] = {}   # jar folder -> (a formatted single-node log dir, its cluster id)


def kafka_lib(fetch: bool = True) -> Path:
    """The folder of broker jars; runs the fetch script (mvn, Maven Central) when it is not there yet."""
    override = os.environ.get("CALLPULSE_KAFKA_LIB")
    if override:
        return Path(override)
    lib = ROOT / ".cache" / "kafka" / KAFKA_VERSION / "lib"
    if not (lib / ".complete").exists():
        if not fetch:
            raise FileNotFoundError(f"Apache Kafka {KAFKA_VERSION} jars not found in {lib}; run: bash scripts/fetch_kafka.sh")
        subprocess.run(["bash", str(FETCH_SCRIPT)], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "CALLPULSE_KAFKA_VERSION": KAFKA_VERSION})
    return lib


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        raise FileNotFoundError("java not found: Apache Kafka needs a Java 17+ runtime on PATH")
    return java


def new_cluster_id() -> str:
    """A random cluster id as Kafka writes them (URL-safe base64 of a UUID), never starting with "-": that one in 64
    reads as an option to ``kafka-storage format -t`` ("expected one argument"); Kafka's own ``Uuid`` skips them too."""
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"


@dataclass
class KafkaCluster:
    """``nodes`` combined broker+controller nodes under ``workdir`` (kept across ``restart``; removed by ``stop``
    only when this object created it). ``broker_config`` adds or overrides server.properties entries."""

    nodes_count: int = 1
    workdir: str = ""
    broker_config: dict[str, str] = field(default_factory=dict)
    heap: str = ""
    port: int = 0                     # the first node's client port (0: a free one)
    nodes: list[Node] = field(default_factory=list)
    cluster_id: str = field(default_factory=new_cluster_id)
    _own_workdir: bool = False

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def start(self) -> "KafkaCluster":
        if not self.workdir:
            import tempfile
            self.workdir, self._own_workdir = tempfile.mkdtemp(prefix="callpulse-kafka-"), True
        lib = kafka_lib()
        Path(self.workdir, "log4j2.properties").write_text(LOG4J2)
        self.nodes = [Node(i + 1, (self.port if i == 0 and self.port else free_port()), free_port(), Path(self.workdir, f"node-{i + 1}"))
                      for i in range(self.nodes_count)]
        try:
            for node in self.nodes:
                self._write_config(node)
                self._format(node, lib)
            for node in self.nodes:
                self._launch(node, lib)
            for node in self.nodes:
                self._wait_ready(node)
        except BaseException:
            self.stop()
            raise
        return self

    def _config_path(self, node: Node) -> Path:
        return Path(self.workdir, f"server-{node.node_id}.properties")

    def _write_config(self, node: Node) -> None:
        voters = ",".join(f"{n.node_id}@{LOOPBACK}:{n.controller_port}" for n in self.nodes)
        replicas = str(min(3, self.nodes_count))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{LOOPBACK}:{node.port},CONTROLLER://{LOOPBACK}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.data_dir),
            "auto.create.topics.enable": "false",     # as in production: topics come from `callpulse topics create`
            "num.partitions": "1",
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "4",      # fewer files and a faster first group join than 50
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.messages": "9223372036854775807",
            **self.broker_config,
        }
        self._config_path(node).write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _java(self, lib: Path, main: str, *args: str) -> list[str]:
        heap = (f"-Xmx{self.heap}",) if self.heap else ()
        return [java_binary(), *JVM_OPTIONS, *heap, f"-Dlog4j2.configurationFile={Path(self.workdir, 'log4j2.properties')}",
                f"-Dkafka.logs.dir={self.workdir}", "-cp", f"{lib}/*", main, *args]

    def _format(self, node: Node, lib: Path) -> None:
        if (node.data_dir / "meta.properties").exists():
            return
        if self.nodes_count == 1 and not self.port:
            self._copy_template(node, lib)
            return
        self._run_format(node, lib)

    def _copy_template(self, node: Node, lib: Path) -> None:
        """The storage tool is a JVM start of its own (4-6 s here): a single node formats once per process into
        a template and later nodes copy it (a static quorum does not record ports in the storage)."""
        template = _TEMPLATES.get(str(lib))
        if template is None or not template[0].exists():
            import tempfile
            root = Path(tempfile.mkdtemp(prefix="callpulse-kafka-template-"))
            atexit.register(shutil.rmtree, root, True)
            scratch = KafkaCluster(workdir=str(root), cluster_id=self.cluster_id)
            Path(root, "log4j2.properties").write_text(LOG4J2)
            scratch.nodes = [Node(node.node_id, node.port, node.controller_port, root / "node-1")]
            scratch._write_config(scratch.nodes[0])
            scratch._run_format(scratch.nodes[0], lib)
            template = _TEMPLATES[str(lib)] = (root / "node-1", self.cluster_id)
        shutil.copytree(template[0], node.data_dir)
        self.cluster_id = template[1]

    def _run_format(self, node: Node, lib: Path) -> None:
        out = subprocess.run(self._java(lib, "kafka.tools.StorageTool", "format", "--ignore-formatted", "-t", self.cluster_id,
                                        "-c", str(self._config_path(node))), capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"kafka storage format failed for node {node.node_id}: {out.stdout[-2000:]}{out.stderr[-2000:]}")

    def _launch(self, node: Node, lib: Path) -> None:
        log = open(Path(self.workdir, f"kafka-{node.node_id}.log"), "ab")
        node.proc = subprocess.Popen(self._java(lib, "kafka.Kafka", str(self._config_path(node))), stdout=log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        log.close()

    def _wait_ready(self, node: Node, timeout: float = READY_TIMEOUT_S) -> None:
        """Ready = the node answers a metadata request that lists every live node."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if node.proc is None or node.proc.poll() is not None:
                raise RuntimeError(f"Apache Kafka node {node.node_id} exited with code {node.proc and node.proc.returncode}; "
                                   f"see {Path(self.workdir, f'kafka-{node.node_id}.log')}")
            try:
                with socket.create_connection((LOOPBACK, node.port), timeout=0.5):
                    pass
                admin = KafkaAdminClient(bootstrap_servers=[node.address], request_timeout_ms=5000, client_id="callpulse-ready")
                try:
                    live = len(admin.describe_cluster()["brokers"])
                finally:
                    admin.close()
                if live >= sum(1 for n in self.nodes if n.proc is not None and n.proc.poll() is None):
                    return
                last = f"{live} live brokers"
            except (OSError, KafkaError) as exc:
                last = exc
            time.sleep(0.25)
        raise TimeoutError(f"Apache Kafka node {node.node_id} not ready within {timeout:g} s (last: {last})")

    def stop_node(self, node: Node, kill: bool = False) -> None:
        """SIGTERM (a clean, controlled shutdown) or SIGKILL; the node's log stays on disk."""
        if node.proc is None or node.proc.poll() is not None:
            return
        node.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            node.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(5)

    def start_node(self, node: Node) -> None:
        self._launch(node, kafka_lib())
        self._wait_ready(node)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            self.stop_node(node)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "KafkaCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stream.kafka_server", description="Run Apache Kafka (KRaft, one node) on 127.0.0.1.")
    ap.add_argument("--port", type=int, default=9092)
    ap.add_argument("--data-dir", default="kafka-data", help="the log and config live here and survive restarts")
    args = ap.parse_args(argv)
    workdir = os.path.abspath(args.data_dir)
    os.makedirs(workdir, exist_ok=True)
    id_file = Path(workdir, "cluster.id")
    if not id_file.exists():
        id_file.write_text(new_cluster_id())
    cluster = KafkaCluster(workdir=workdir, port=args.port, cluster_id=id_file.read_text().strip())
    stop = False

    def on_signal(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with cluster:
        print(f"Apache Kafka {KAFKA_VERSION} on {cluster.bootstrap_servers} (log in {workdir}); Ctrl-C stops it", flush=True)
        while not stop and all(n.proc is not None and n.proc.poll() is None for n in cluster.nodes):
            time.sleep(0.5)


if __name__ == "__main__":
    main()
