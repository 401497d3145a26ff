"""The worker's Kafka consumer gets callpulse's fetch settings, which faust-streaming hard-codes or does not expose:
the 50 ms longest wait, and the least data a fetch waits for (``CALLPULSE_FETCH_MIN_BYTES``)."""

import asyncio

import pytest

from stream.app import FETCH_MAX_WAIT_MS, create_app
from stream.settings import Settings


def _worker_consumer(settings: Settings):
    async def build():
        app = create_app(settings)
        thread = app.consumer._thread
        return thread._create_worker_consumer(app.transport)   # aiokafka connects only when started
    return asyncio.run(build())


def test_the_consumer_waits_for_the_configured_bytes_at_most_50_ms():
    consumer = _worker_consumer(Settings(bootstrap_servers="127.0.0.1:9", fetch_min_bytes=32768))
    assert consumer._fetch_min_bytes == 32768
    assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 50


def test_the_setting_is_read_from_the_environment_and_defaults_to_64_kib(monkeypatch):
    monkeypatch.delenv("CALLPULSE_FETCH_MIN_BYTES", raising=False)
    assert _worker_consumer(Settings(bootstrap_servers="127.0.0.1:9"))._fetch_min_bytes == 65_536
    monkeypatch.setenv("CALLPULSE_FETCH_MIN_BYTES", "1")     # the lowest latency at light load
    assert _worker_consumer(Settings(bootstrap_servers="127.0.0.1:9"))._fetch_min_bytes == 1


@pytest.mark.parametrize("bad", ["0", "2000000"])
def test_out_of_range_values_are_refused(monkeypatch, bad):
    monkeypatch.setenv("CALLPULSE_FETCH_MIN_BYTES", bad)
    with pytest.raises(ValueError, match="fetch_min_bytes"):
        Settings()
