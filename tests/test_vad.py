import numpy as np

from tests.support import tone_leg
from workers.vad import FRAME_SAMPLES, HANGOVER_FRAMES, VadState, frame_dbfs


def steps(x):
    return [x[i:i + 8000] for i in range(0, len(x), 8000)]


def test_levels_in_dbfs():
    sine = np.sin(2 * np.pi * 500 * np.arange(8000) / 8000).astype(np.float32)
    assert np.allclose(frame_dbfs(sine), -3.01, atol=0.05)
    assert len(frame_dbfs(sine)) == 8000 // FRAME_SAMPLES


def test_speech_is_found_where_it_is_and_silence_is_not_scored():
    x = tone_leg([(1.5, 3.0)], 5.0)
    vad = VadState()
    masks = np.concatenate([vad.speech_mask(s)[0] for s in steps(x)])
    frames = np.arange(len(masks)) * 0.02
    speech_frames = frames[masks]
    assert speech_frames.min() == 1.5 or abs(speech_frames.min() - 1.5) <= 0.02
    assert 3.0 <= speech_frames.max() <= 3.0 + HANGOVER_FRAMES * 0.02
    assert not masks[frames < 1.48].any()


def test_hangover_carries_across_step_boundaries():
    x = tone_leg([(0.9, 1.0)], 2.0)
    vad = VadState()
    m0, _ = vad.speech_mask(x[:8000])
    m1, _ = vad.speech_mask(x[8000:])
    assert m0[-5:].all()
    assert m1[:HANGOVER_FRAMES].all() and not m1[HANGOVER_FRAMES:].any()


def test_the_noise_floor_adapts_to_a_noisy_line_and_reset_restores_it():
    rng = np.random.default_rng(0)
    noisy = rng.normal(0, 0.03, 8000 * 20).astype(np.float32)   # about -30 dBFS of line noise
    vad = VadState()
    flags = [vad.speech_mask(s)[0].mean() for s in steps(noisy)]
    assert flags[-1] == 0.0
    vad.reset()
    assert vad.floor_dbfs == VadState().floor_dbfs and vad.tail == 0


def test_state_round_trip():
    vad = VadState()
    vad.speech_mask(tone_leg([(0.5, 1.0)], 1.0))
    assert VadState.from_dict(vad.to_dict()) == vad
