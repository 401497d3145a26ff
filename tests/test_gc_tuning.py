"""workers.gc_tuning: the worker freezes its start-up objects and widens the young generation, unless told not to.
Each case runs in a fresh interpreter, so the test process's own collector is left alone."""

import subprocess
import sys

import pytest

CALL = ("import gc; from workers.gc_tuning import tune_gc as f; held = [[i] for i in range(1000)]; "
        "print(f({n}), gc.get_threshold()[0], gc.get_freeze_count() >= 1000)")


def run(n: int) -> str:
    return subprocess.run([sys.executable, "-c", CALL.format(n=n)], capture_output=True, text=True, check=True).stdout.strip()


def test_applied_freezes_what_start_up_allocated():
    assert run(10_000) == "True 10000 True"


def test_zero_keeps_pythons_defaults():
    assert run(0) == "False 700 False"


def test_the_setting_reaches_the_worker_and_is_bounded(monkeypatch):
    from pydantic import ValidationError
    from stream.settings import Settings
    assert Settings().gc_gen0_threshold == 10_000
    monkeypatch.setenv("CALLPULSE_GC_GEN0_THRESHOLD", "0")
    assert Settings().gc_gen0_threshold == 0
    monkeypatch.setenv("CALLPULSE_GC_GEN0_THRESHOLD", "-1")
    with pytest.raises(ValidationError):
        Settings()
