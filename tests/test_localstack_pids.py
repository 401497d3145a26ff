"""``LocalStack.server_pids``: the processes that serve a stack, which the benchmark pins off the worker's core and
counts as its harness. With Apache Kafka the broker is a JVM per node, not one of the stack's own children."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.brokers("tansu", "apache_kafka")


def test_server_pids_are_the_live_broker_and_redis_processes(stack, broker):
    pids = stack.server_pids()
    nodes = stack.kafka_nodes if broker == "apache_kafka" else 1
    assert len(pids) == len(set(pids)) == nodes + 1
    assert pids[-1] == stack.redis_proc.pid
    for pid in pids:
        os.kill(pid, 0)   # alive (raises otherwise)
    broker_cmdline = Path(f"/proc/{pids[0]}/cmdline").read_bytes()
    assert (b"kafka.Kafka" if broker == "apache_kafka" else b"tansu") in broker_cmdline
