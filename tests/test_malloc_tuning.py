"""workers.malloc_tuning: the worker fixes glibc's mmap threshold, unless told not to or glibc's variable is set."""

import os
import platform
import subprocess
import sys

import pytest

CALL = "from workers.malloc_tuning import fix_mmap_threshold as f; print(f({n}))"


def run(n: int, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"} | env
    return subprocess.run([sys.executable, "-c", CALL.format(n=n)], env=environment, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_applied_on_glibc():
    assert run(1 << 20) == "True"


def test_zero_keeps_the_adaptive_threshold():
    assert run(0) == "False"


def test_an_operators_glibc_variable_wins():
    assert run(1 << 20, MALLOC_MMAP_THRESHOLD_="65536") == "False"


def test_the_setting_reaches_the_worker_and_is_bounded(monkeypatch):
    from pydantic import ValidationError
    from stream.settings import Settings
    monkeypatch.setenv("CALLPULSE_MALLOC_MMAP_THRESHOLD_BYTES", "0")
    assert Settings().malloc_mmap_threshold_bytes == 0
    monkeypatch.setenv("CALLPULSE_MALLOC_MMAP_THRESHOLD_BYTES", str(64 << 20))
    with pytest.raises(ValidationError):
        Settings()
