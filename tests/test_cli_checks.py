"""What a newcomer hits first: replay's file checks, resampling and a wrong broker address; the worker's topic
check; the demo's ports. Each must fail fast with one clear line, before anything is started or sent."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stream.cli import main
from stream.demo import choose_port
from stream.localstack import free_port
from stream.replay import load_call
from stream.topic_admin import TopicsError, check_topics, connect_admin
from tests.support import tone_leg

ROOT = Path(__file__).resolve().parents[1]
SR = 8000


def stereo_at(path, rate, seconds=2.0):
    t = np.arange(int(seconds * rate)) / rate
    agent = 0.3 * np.sin(2 * np.pi * 300 * t)
    customer = 0.3 * np.sin(2 * np.pi * 500 * t) + 0.2 * np.sin(2 * np.pi * 12_000 * t) * (rate > 24_000)
    sf.write(path, np.stack([agent, customer], axis=1), rate, subtype="PCM_16")
    return str(path)


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_replay_resamples_44_1_and_48_khz_recordings_to_16_khz(tmp_path, rate):
    call = load_call(stereo_at(tmp_path / "call.wav", rate), "x")
    assert call.sample_rate == 16_000 and call.duration_s == pytest.approx(2.0, abs=1e-3)
    agent = call.legs["agent"]
    t = np.arange(len(agent)) / 16_000
    assert np.abs(agent[400:-400] - 0.3 * np.sin(2 * np.pi * 300 * t[400:-400])).max() < 0.01
    # the 12 kHz tone is above the new Nyquist frequency: cut, not folded back into the band
    spectrum = np.abs(np.fft.rfft(call.legs["customer"]))
    assert spectrum[int(4_000 * 2.0)] < 1e-3 * spectrum[int(500 * 2.0)]


def test_replay_checks_files_before_connecting(tmp_path, capsys):
    mono = tmp_path / "mono.wav"
    sf.write(mono, tone_leg([(0, 1)], 2.0), SR)
    t = time.monotonic()
    assert main(["replay", "--bootstrap-servers", f"127.0.0.1:{free_port()}", str(mono)]) == 2
    assert time.monotonic() - t < 3, "the file must be refused before any connection attempt"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must be stereo" in err[0]
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    assert main(["replay", "--bootstrap-servers", f"127.0.0.1:{free_port()}", str(junk)]) == 2
    assert "not a readable audio file" in capsys.readouterr().err


def test_replay_to_a_wrong_address_fails_within_about_10_s_with_one_line(tmp_path):
    call = stereo_at(tmp_path / "call.wav", SR)
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "stream.cli", "replay", "--bootstrap-servers", f"127.0.0.1:{free_port()}", call],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t
    assert out.returncode == 2 and elapsed < 15, (elapsed, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Kafka broker reachable" in lines[0], out.stderr


def test_demo_refuses_a_taken_port_before_starting_anything(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert choose_port(None, port, "metrics") != port   # a taken default: any free port
        out = subprocess.run([sys.executable, "-m", "stream.cli", "demo", "--metrics-port", str(port), "--duration", "1"], cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT), "CALLPULSE_DEMO_LOGDIR": str(tmp_path)},
                             capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert out.stdout == "" and f"metrics port {port} on 127.0.0.1 is in use" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.integration
@pytest.mark.brokers("tansu", "apache_kafka")
def test_the_worker_refuses_to_start_on_mismatched_or_missing_topics(stack, worker_env):
    from kafka.admin import NewTopic
    assert check_topics(stack.bootstrap_servers) == 8
    admin = connect_admin(stack.bootstrap_servers)
    try:
        admin.delete_topics(["calls.events"])
        deadline = time.monotonic() + 30
        while "calls.events" in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.2)
        with pytest.raises(TopicsError, match="calls.events missing"):
            check_topics(stack.bootstrap_servers)
        for _ in range(50):   # Apache Kafka deletes asynchronously: retry the create until the old one is gone
            try:
                admin.create_topics([NewTopic("calls.events", 2, 1)])
                break
            except Exception:
                time.sleep(0.2)
    finally:
        admin.close()
    out = subprocess.run([sys.executable, "-m", "stream.cli", "worker", "--metrics-port", str(free_port())], cwd=ROOT,
                         env={**os.environ, **worker_env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "calls.audio has 8 partitions but calls.events has 2" in out.stderr and "Traceback" not in out.stderr
