"""The producer checksums record batches in C: kafka-python falls back to pure Python without the ``crc32c``
package, which cost about 0.5 ms per 4 kB audio chunk and saturated the benchmark's producer core."""

from __future__ import annotations

import logging

import pytest
from kafka.record import util
from kafka.record._crc32c import crc as crc32c_python

from stream import producer

CHECK_VALUE = 0xE3069283   # CRC-32C of b"123456789" (RFC 3720, appendix B.4)


def test_kafka_python_uses_the_compiled_crc32c():
    assert producer.native_crc32c()
    assert util.calc_crc32c(memoryview(b"123456789")) == CHECK_VALUE


def test_compiled_and_python_crc32c_agree_on_an_audio_sized_batch():
    data = memoryview(bytes(range(256)) * 17)
    assert util.calc_crc32c(data) == crc32c_python(data)


def test_producer_warns_when_only_the_python_crc32c_is_there(monkeypatch, caplog):
    monkeypatch.setattr(util, "crc32c_c", None)
    assert not producer.native_crc32c()
    with caplog.at_level(logging.WARNING, logger="stream.producer"), pytest.raises(ConnectionError):
        producer.CallProducer("127.0.0.1:1", connect_timeout_s=0.5)
    assert any("CRC-32C" in r.getMessage() for r in caplog.records)
