"""One real-time run (``stream.bench.run_load``) with what stop 31 looked at around it:

  python reports/bench/realtime_probe.py CALLS SECONDS [python-crc] [apache_kafka]

- the broker's (tansu, or Apache Kafka with ``apache_kafka``), Redis's and this harness's CPU every 2 s (the
  harness shares their cores, off the worker's);
- the worker's batch, model-run and Redis-write counters, read just before it stops;
- ``python-crc``: kafka-python's record batches checksummed by its pure-Python CRC-32C, as before stop 31.
Run it from the checkout to measure, with a Python that has callpulse's dependencies, on an idle machine.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.getcwd())
from stream.bench import WORKER_CORE, run_load  # noqa: E402
from stream.bench_support import WorkerUnderTest, cpu_seconds, other_cores, pin  # noqa: E402
from stream.localstack import LocalStack  # noqa: E402

COUNTERS = tuple(f"callpulse_{name}_{part}" for name in ("batch_processing_seconds", "inference_batch_windows", "redis_write_seconds")
                 for part in ("count", "sum"))
calls, seconds = int(sys.argv[1]), float(sys.argv[2])
if "python-crc" in sys.argv[3:]:
    import kafka.record.default_records as records
    from kafka.record._crc32c import crc as python_crc32c
    records.calc_crc32c = python_crc32c
    print("kafka-python checksums with its pure-Python CRC-32C")

stop_worker = WorkerUnderTest.stop


def stop_after_reading_counters(self):
    print("\n".join(line for line in self.metrics().splitlines() if line.startswith(COUNTERS)))
    stop_worker(self)


WorkerUnderTest.stop = stop_after_reading_counters
pin(os.getpid(), other_cores({WORKER_CORE}))
with LocalStack(broker="apache_kafka" if "apache_kafka" in sys.argv[3:] else "tansu") as stack:
    *brokers, redis = stack.server_pids()
    pids = {"broker": brokers[0], "redis": redis, "harness": os.getpid()}
    done = threading.Event()

    def sample() -> None:
        before, t = {k: cpu_seconds(p) for k, p in pids.items()}, time.time()
        while not done.wait(2.0):
            now, after = time.time(), {k: cpu_seconds(p) for k, p in pids.items()}
            print("cores used:", {k: round((after[k] - before[k]) / (now - t), 2) for k in pids}, flush=True)
            before, t = after, now

    threading.Thread(target=sample, daemon=True).start()
    result = run_load(stack, calls, seconds, 500, "probe")
    done.set()
    print(result)
