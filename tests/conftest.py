import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def stack(tmp_path):
    """A fresh real broker (tansu) and Redis (Valkey) on free 127.0.0.1 ports for each test (both start in
    well under a second), so tests never see each other's messages or keys."""
    from stream.localstack import LocalStack
    with LocalStack(logdir=str(tmp_path)) as s:
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
