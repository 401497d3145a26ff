"""Training-input recipe: speed perturbation and the recipe's names (training code: needs torch, skipped in CI)."""

import numpy as np
import pytest

pytest.importorskip("torch")

from onnx_models.augment import change_speed, random_channel
from onnx_models.data import WINDOW, Clip, speech_crop
from onnx_models.dsp import SAMPLE_RATE_HZ
from onnx_models.train import SHIPPED_RECIPE, Recipe, training_clips, training_window


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * SAMPLE_RATE_HZ / len(x))


def test_change_speed_raises_pitch_by_the_factor():
    x = tone(1.1 * WINDOW / SAMPLE_RATE_HZ, 400.0)          # 1.1 windows squeezed into one: 10 % faster
    y = change_speed(x, WINDOW)
    assert y.shape == (WINDOW,) and y.dtype == np.float32
    assert peak_hz(y) == pytest.approx(440.0, abs=2.0)
    assert peak_hz(change_speed(tone(0.9 * WINDOW / SAMPLE_RATE_HZ, 400.0), WINDOW)) == pytest.approx(360.0, abs=2.0)


def speechy_clip(seconds: float = 3.0) -> Clip:
    rng = np.random.default_rng(7)
    audio = tone(seconds, 180.0) * (np.arange(int(seconds * SAMPLE_RATE_HZ)) > SAMPLE_RATE_HZ // 2)
    return Clip("ravdess", "s1", "f", "angry", (audio + rng.normal(0, 1e-3, len(audio))).astype(np.float32))


def test_speed_perturbed_windows_are_one_window_long_and_seeded():
    clip = speechy_clip()
    a = [training_window(clip, np.random.default_rng(3), SHIPPED_RECIPE, []) for _ in range(2)]
    assert a[0].shape == (WINDOW,) and a[0].dtype == np.float32
    assert np.array_equal(a[0], a[1])
    rng = np.random.default_rng(3)
    pitches = {round(peak_hz(training_window(clip, rng, SHIPPED_RECIPE, [])), -1) for _ in range(12)}
    assert len(pitches) > 1            # the voice moves: not the identity


def test_plain_recipe_draws_exactly_what_the_older_recipes_drew():
    """Models trained before speed perturbation stay reproducible with --speed 0."""
    clip = speechy_clip()
    rng = np.random.default_rng(5)
    expected = random_channel(speech_crop(clip.audio, rng), rng, [])     # train()'s draw before the recipe existed
    assert np.array_equal(training_window(clip, np.random.default_rng(5), Recipe(), []), expected)


def test_recipe_tags_name_what_differs_from_the_plain_recipe():
    assert Recipe().tag() == ""
    assert SHIPPED_RECIPE.tag() == "_speed0.1"
    assert Recipe(mixup=0.4, specaug_masks=0).tag() == "_specaugmasks0_mixup0.4"


def test_training_clips_hold_out_speakers_and_leave_corpora_out():
    def clip(corpus, speaker):
        return Clip(corpus, speaker, "f", "angry", np.zeros(8, np.float32))
    base = [clip("ravdess", "r1"), clip("ravdess", "r2"), clip("emovo", "e1")]
    extra = [clip("emodb", "d1")]
    assert [c.speaker for c in training_clips(base, extra, {"r2"}, set())] == ["r1", "e1", "d1"]
    assert [c.speaker for c in training_clips(base, extra, set(), {"emovo"})] == ["r1", "r2", "d1"]
    assert [c.speaker for c in training_clips(base, extra, set(), {"emodb", "ravdess"})] == ["e1"]
    with pytest.raises(ValueError, match="emvo"):
        training_clips(base, extra, set(), {"emvo"})
