"""`callpulse replay` through the real broker into a real worker, from WAV files, including 16 kHz PCM and one file per leg."""

import json

import numpy as np
import pytest
import soundfile as sf

from stream.cli import main
from stream.redis_keys import Keys
from stream.replay import load_call
from tests.support import WorkerProcess, tone_leg, wait_for

pytestmark = pytest.mark.integration


def test_load_call_contracts(tmp_path):
    stereo = tmp_path / "call.wav"
    sf.write(stereo, np.stack([tone_leg([(0, 1)], 2.0), tone_leg([(1, 2)], 2.0)], axis=1), 8000, subtype="ULAW")
    call = load_call(str(stereo), "x")
    assert call.sample_rate == 8000 and set(call.legs) == {"agent", "customer"} and call.duration_s == 2.0
    mono = tmp_path / "mono.wav"
    sf.write(mono, tone_leg([(0, 1)], 2.0), 8000)
    with pytest.raises(ValueError, match="must be stereo"):
        load_call(str(mono))
    low = tmp_path / "low.wav"
    sf.write(low, np.zeros((600, 2)), 6000)
    with pytest.raises(ValueError, match="at least 8000 Hz, got 6000"):
        load_call(str(low))


def test_replay_files_at_speed_into_a_worker(stack, worker_env, redis_client, tmp_path):
    agent16 = tmp_path / "agent.wav"
    cust16 = tmp_path / "customer.wav"
    sf.write(agent16, np.repeat(tone_leg([(0, 3), (6, 8)], 10.0, seed=1), 2), 16000, subtype="PCM_16")
    sf.write(cust16, np.repeat(tone_leg([(3, 6)], 10.0, seed=2), 2), 16000, subtype="PCM_16")
    worker = WorkerProcess(worker_env).start()
    try:
        rc = main(["replay", "--bootstrap-servers", stack.bootstrap_servers, "--speed", "5", "--chunk-ms", "100",
                   "--encoding", "pcm_s16le", f"{agent16}+{cust16}"])
        assert rc == 0
        keys = Keys()
        def ended_ids():
            return [k.split(":")[2] for k in redis_client.keys(keys.summary("*"))]
        ids = wait_for(ended_ids, 60, what="the replayed call's summary")
        s = json.loads(redis_client.get(keys.summary(ids[0])))
        assert s["duration_s"] == 10.0
        assert s["agent_speech_s"] == pytest.approx(5.3, abs=0.2)
        assert s["customer_speech_s"] == pytest.approx(3.2, abs=0.2)
        assert worker.metric("callpulse_bad_input_total") == 0
    finally:
        worker.stop()
