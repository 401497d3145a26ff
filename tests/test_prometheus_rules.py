"""Prometheus recording and alerting rules: syntax (promtool check) and behaviour (promtool test rules)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DIR = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")

if PROMTOOL is None:
    if os.environ.get("CI"):
        raise RuntimeError("promtool is missing in CI: scripts/test.sh installs Debian's prometheus package")
    pytest.skip("promtool not installed (Debian package prometheus)", allow_module_level=True)


def promtool(*args, cwd=DIR):
    r = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_rule_files_are_valid():
    out = promtool("check", "rules", "recording_rules.yml", "alerting_rules.yml")
    assert out.count("SUCCESS") == 2


def test_prometheus_config_is_valid():
    promtool("check", "config", "prometheus.yml")


def test_rule_unit_tests_pass():
    files = sorted(p.name for p in (DIR / "tests").glob("*_test.yml"))
    assert {"rules_test.yml", "transcriber_rules_test.yml"} <= set(files)
    out = promtool("test", "rules", *files, cwd=DIR / "tests")
    assert out.count("SUCCESS") == len(files), out


def test_every_alert_selects_its_tier_by_job():
    """Workers and transcribers export the same metric families; an alert on a shared family that does not
    select a job would add one tier's lag, dead letters or stalls to the other's."""
    import yaml
    shared = ("callpulse_consumer_lag_messages", "callpulse_dead_letters_total", "callpulse_last_batch_age_seconds", "up{")
    for g in yaml.safe_load((DIR / "alerting_rules.yml").read_text())["groups"]:
        for r in g["rules"]:
            if any(s in r["expr"] for s in shared):
                assert 'job="callpulse-' in r["expr"], r["alert"]
            if r["alert"].startswith("CallpulseTranscri"):
                assert 'job="callpulse-transcriber"' in r["expr"], r["alert"]


def test_a_broken_rule_is_caught(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - record: callpulse:broken\n        expr: sum(rate(x[5m]) by (\n")
    r = subprocess.run([PROMTOOL, "check", "rules", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0
