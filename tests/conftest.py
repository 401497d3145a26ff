import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BROKER_MARKS = {"tansu": (), "apache_kafka": (pytest.mark.apache_kafka,)}


def pytest_generate_tests(metafunc):
    """``@pytest.mark.brokers("tansu", "apache_kafka")`` (or ``brokers()`` for all) runs a test that uses the
    ``stack`` fixture once per broker; the ``apache_kafka`` runs carry the ``apache_kafka`` marker. Tests
    without the marker run on tansu only, under their plain names."""
    marker = metafunc.definition.get_closest_marker("brokers")
    if marker is None or "broker" not in metafunc.fixturenames:
        return
    kinds = marker.args or tuple(BROKER_MARKS)
    unknown = set(kinds) - set(BROKER_MARKS)
    if unknown:
        raise pytest.UsageError(f"unknown broker(s) {sorted(unknown)} in @pytest.mark.brokers; known: {sorted(BROKER_MARKS)}")
    metafunc.parametrize("broker", [pytest.param(k, id=k, marks=BROKER_MARKS[k]) for k in kinds])


@pytest.fixture
def broker():
    """The Kafka broker the ``stack`` fixture starts; parametrised by ``@pytest.mark.brokers``."""
    return "tansu"


def require_apache_kafka() -> None:
    """Apache Kafka needs java (and mvn for the first fetch of its jars). In CI a missing tool is a failure,
    elsewhere a skip with the reason."""
    from stream.kafka_server import KAFKA_VERSION, ROOT
    missing = [t for t in ("java",) if shutil.which(t) is None]
    if not (ROOT / ".cache" / "kafka" / KAFKA_VERSION / "lib" / ".complete").exists() and shutil.which("mvn") is None:
        missing.append("mvn")
    if missing:
        message = f"Apache Kafka tests need {', '.join(missing)} (see scripts/fetch_kafka.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def stack(tmp_path, broker):
    """A fresh real broker (tansu, or Apache Kafka with ``@pytest.mark.brokers``) and Redis (Valkey) on free
    127.0.0.1 ports for each test, so tests never see each other's messages or keys. tansu starts in well
    under a second, a single-node Apache Kafka in about 10 s."""
    from stream.localstack import LocalStack
    if broker == "apache_kafka":
        require_apache_kafka()
    with LocalStack(logdir=str(tmp_path), broker=broker) as s:
        yield s


@pytest.fixture
def redis_client(stack):
    import redis
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    yield r
    r.close()


@pytest.fixture
def worker_env(stack, tmp_path):
    env = {
        "CALLPULSE_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "CALLPULSE_REDIS_URL": stack.redis_url,
        "CALLPULSE_TEST_LOGDIR": str(tmp_path),
        "CALLPULSE_INACTIVITY_TIMEOUT_S": "30",
    }
    if os.environ.get("CALLPULSE_MODEL_DIR"):
        env["CALLPULSE_MODEL_DIR"] = os.environ["CALLPULSE_MODEL_DIR"]
    return env
