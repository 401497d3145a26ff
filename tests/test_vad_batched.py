"""The VAD of several legs at once (issue 16) decides exactly what the per-leg VAD decided."""

import numpy as np

from workers.vad import FLOOR_RISE_DB_PER_STEP, HANGOVER_FRAMES, INITIAL_FLOOR_DBFS, MIN_SPEECH_DBFS, SPEECH_ABOVE_FLOOR_DB, VadState, frame_dbfs, speech_masks


def reference_speech_mask(state: VadState, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-leg algorithm as it was before it was batched, kept here as the reference."""
    db = frame_dbfs(samples)
    if db.size == 0:
        return np.zeros(0, dtype=bool), db
    quiet = float(np.partition(db, db.size // 10)[db.size // 10])
    state.floor_dbfs = min(state.floor_dbfs + FLOOR_RISE_DB_PER_STEP, quiet)
    raw = (db > state.floor_dbfs + SPEECH_ABOVE_FLOOR_DB) & (db > MIN_SPEECH_DBFS)
    prev = (state.tail >> np.arange(HANGOVER_FRAMES - 1, -1, -1)) & 1
    padded = np.concatenate([prev.astype(np.int8), raw.astype(np.int8)])
    counts = np.convolve(padded, np.ones(HANGOVER_FRAMES + 1, np.int8), mode="full")
    mask = counts[HANGOVER_FRAMES: HANGOVER_FRAMES + raw.size] > 0
    bits = padded[-HANGOVER_FRAMES:]
    state.tail = int((bits.astype(np.int64) << np.arange(HANGOVER_FRAMES - 1, -1, -1)).sum())
    return mask, db


def leg_audio(rng, seconds):
    """Noise floors and levels that move, speech bursts near the thresholds, silence, clipping."""
    n = seconds * 8000
    x = rng.normal(0, 10 ** rng.uniform(-4, -1.5), n)
    for _ in range(seconds):
        a = int(rng.integers(0, n))
        b = min(n, a + int(rng.integers(80, 16000)))
        x[a:b] += rng.normal(0, 10 ** rng.uniform(-3, 0), b - a)
    if rng.random() < 0.2:
        x[: n // 3] = 0.0
    return np.clip(x, -1, 1).astype(np.float32)


def test_batched_legs_match_each_leg_alone_step_by_step():
    rng = np.random.default_rng(16)
    speech = silence = 0
    for trial in range(20):
        legs = int(rng.integers(1, 9))
        step = int(rng.choice([8000, 8000, 4000, 1000, 100, 8100]))
        audio = [leg_audio(rng, 12) for _ in range(legs)]
        batched = [VadState() for _ in range(legs)]
        alone = [VadState(float(INITIAL_FLOOR_DBFS), 0) for _ in range(legs)]
        for k in range(len(audio[0]) // step):
            chunk = np.stack([a[k * step:(k + 1) * step] for a in audio])
            masks, db = speech_masks(batched, chunk)
            for i in range(legs):
                m, d = reference_speech_mask(alone[i], chunk[i])
                assert np.array_equal(masks[i], m) and np.array_equal(db[i], d), (trial, k, i)
                assert (batched[i].floor_dbfs, batched[i].tail) == (alone[i].floor_dbfs, alone[i].tail)
            speech += int(masks.sum())
            silence += int((~masks).sum())
    assert speech > 1000 and silence > 1000   # both decisions were exercised
