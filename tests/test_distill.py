"""Distillation training (`onnx_models.distill` and train's ``distill`` hook): the KD loss, the targets' alignment
with the training clips, and that a KD run sees exactly the crops of the run without it. Training code: needs
torch, skipped in CI."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from onnx_models.data import Clip
from onnx_models.distill import aligned_targets, kd_loss
from onnx_models.distill_targets import sentiment_targets, tempered
from onnx_models.dsp import SAMPLE_RATE_HZ
from onnx_models.labels import EMOTIONS
from onnx_models.train import Recipe, train, train_members


def _clips(n: int = 6) -> list[Clip]:
    rng = np.random.default_rng(0)
    emotions = ["angry", "happy", "surprised", "sad", "calm", "neutral"]
    out = []
    for i in range(n):
        audio = (rng.normal(size=int(2.5 * SAMPLE_RATE_HZ)) * np.repeat(rng.uniform(0.01, 0.3, 25), SAMPLE_RATE_HZ // 10)).astype(np.float32)
        out.append(Clip("ravdess", f"s{i % 2}", "f", emotions[i % len(emotions)], audio))
    return out


def _targets(clips: list[Clip]) -> np.ndarray:
    rng = np.random.default_rng(1)
    return tempered(rng.normal(size=(len(clips), len(EMOTIONS))), 2.0).astype(np.float32)


def test_kd_loss_mixes_hard_loss_and_kl_to_the_teacher():
    clips = _clips()
    t = _targets(clips)
    hard = torch.tensor(1.7)
    idx = np.array([0, 2, 3])
    e = torch.randn(3, len(EMOTIONS), requires_grad=True)
    s = torch.randn(3, 3)
    assert float(kd_loss(t, clips, 0.0, 2.0)(e, s, idx, hard).detach()) == pytest.approx(1.7)
    # a student whose tempered distributions equal the teacher's pays only the hard part
    e_match = torch.log(torch.from_numpy(t[idx])) * 2.0
    s_match = torch.log(torch.from_numpy(sentiment_targets(t[idx])).clamp_min(1e-12)) * 2.0
    assert float(kd_loss(t, clips, 0.5, 2.0)(e_match, s_match, idx, hard)) == pytest.approx(0.85, abs=1e-4)
    loss = kd_loss(t, clips, 0.5, 2.0)(e, s, idx, hard)
    assert float(loss.detach()) > 0.85
    loss.backward()
    assert e.grad is not None and float(e.grad.abs().sum()) > 0


def test_sentiment_term_skips_clips_without_sentiment():
    clips = _clips()
    t = _targets(clips)
    idx = np.array([2])                     # the surprised clip: no sentiment, so only the emotion term counts
    e = torch.log(torch.from_numpy(t[idx])) * 2.0
    s = torch.randn(1, 3) * 5
    assert float(kd_loss(t, clips, 1.0, 2.0)(e, s, idx, torch.tensor(0.0))) == pytest.approx(0.0, abs=1e-5)


def test_aligned_targets_follow_the_clip_keys_and_refuse_a_mismatch():
    clips = _clips(4)
    keys = {id(c): ("ravdess", 10 + i) for i, c in enumerate(clips)}
    t = _targets(clips)
    order = [3, 1, 0, 2]                    # the file lists the clips in another order
    targets = {"corpus": np.array(["ravdess"] * 4), "index": np.array([10 + i for i in order]),
               "label": np.array([clips[i].label for i in order]), "emotion": t[order]}
    np.testing.assert_array_equal(aligned_targets(clips, keys, targets), t)
    wrong = dict(targets, label=np.roll(targets["label"], 1))
    with pytest.raises(ValueError, match="no matching teacher target"):
        aligned_targets(clips, keys, wrong)
    with pytest.raises(ValueError, match="the task trains on"):
        aligned_targets(clips[:3], keys, targets)


def test_a_kd_run_sees_the_same_crops_as_the_plain_run():
    """A distillation hook that returns the hard loss unchanged gives bit-identical weights: the hook consumes no
    random numbers, so KD and plain arms differ only by the teacher term."""
    torch.set_num_threads(1)
    clips = _clips()
    plain, _ = train(clips, epochs=1, seed=3, log=lambda *_: None, progress=False)
    same, _ = train(clips, epochs=1, seed=3, log=lambda *_: None, progress=False, distill=lambda e, s, idx, hard: hard)
    for a, b in zip(plain.state_dict().values(), same.state_dict().values()):
        assert torch.equal(a, b)
    kd, _ = train(clips, epochs=1, seed=3, log=lambda *_: None, progress=False, distill=kd_loss(_targets(clips), clips, 0.5, 2.0))
    assert any(not torch.equal(a, b) for a, b in zip(plain.state_dict().values(), kd.state_dict().values()))
    with pytest.raises(ValueError, match="mixup"):
        train(clips, epochs=1, recipe=Recipe(mixup=0.4), distill=lambda e, s, idx, hard: hard)


def test_members_pass_the_distillation_loss_on():
    torch.set_num_threads(1)
    clips = _clips()
    loss = kd_loss(_targets(clips), clips, 0.5, 2.0)
    kd, _ = train(clips, epochs=1, seed=4, log=lambda *_: None, progress=False, distill=loss)
    (member,) = train_members(clips, "cnn2d", 1, [4], jobs=1, distill=loss)
    for a, b in zip(kd.state_dict().values(), member["state"].values()):
        assert torch.equal(a, b)
