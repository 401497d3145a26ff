"""A one-graph model (the accurate profile's contract) becomes a model folder the workers load, and the profile's
head can be trained without held-out speakers or a corpus (to judge it on calls it never heard). No torch."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx_models import whisper_head
from onnx_models.data import speaker_folds
from onnx_models.labels import EMOTIONS, SENTIMENTS
from onnx_models.profile_dir import write_model_dir
from workers.inference import Models, OnnxClassifier


def _two_head_graph(path, sentiment_name="sentiment_probabilities", labels=EMOTIONS) -> None:
    """waveform [batch, samples] -> (mean, mean square) -> two softmax heads, as the profile's outputs."""
    rng = np.random.default_rng(0)
    w_e = numpy_helper.from_array(rng.normal(0, 3, (2, len(EMOTIONS))).astype(np.float32), "w_e")
    w_s = numpy_helper.from_array(rng.normal(0, 3, (2, 3)).astype(np.float32), "w_s")
    nodes = [helper.make_node("ReduceMean", ["waveform"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Mul", ["waveform", "waveform"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[1], keepdims=1),
             helper.make_node("Concat", ["m", "ms"], ["f"], axis=1),
             helper.make_node("MatMul", ["f", "w_e"], ["ze"]), helper.make_node("Softmax", ["ze"], ["probabilities"], axis=1),
             helper.make_node("MatMul", ["f", "w_s"], ["zs"]), helper.make_node("Softmax", ["zs"], [sentiment_name], axis=1)]
    graph = helper.make_graph(nodes, "two_heads", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(EMOTIONS)]),
                               helper.make_tensor_value_info(sentiment_name, TensorProto.FLOAT, ["batch", 3])], [w_e, w_s])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for k, v in {"sample_rate": "8000", "labels": json.dumps(list(labels))}.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, str(path))


def test_the_folder_serves_both_heads_from_one_run(tmp_path):
    src = tmp_path / "profile.onnx"
    _two_head_graph(src)
    manifest = write_model_dir(src, tmp_path / "m", "test-1")
    assert manifest["emotion.onnx"]["weights_id"] == manifest["sentiment.onnx"]["weights_id"]
    models = Models(tmp_path / "m")
    assert models.joint_output == "sentiment_probabilities"     # one graph run per window gives both heads
    x = np.random.default_rng(1).normal(0, 0.3, (5, 16000)).astype(np.float32)
    emo, score = models.predict(x)
    source = OnnxClassifier(src)
    want_emo, want_sent = source.session.run(["probabilities", "sentiment_probabilities"], {"waveform": x})
    np.testing.assert_allclose(emo, want_emo, rtol=1e-6)
    np.testing.assert_allclose(score, want_sent[:, 2] - want_sent[:, 0], rtol=1e-5, atol=1e-7)
    sentiment = OnnxClassifier(tmp_path / "m" / "sentiment.onnx")       # on its own, its first output is sentiment
    assert sentiment.labels == tuple(SENTIMENTS)
    np.testing.assert_allclose(sentiment.predict(x), want_sent, rtol=1e-6)


def test_a_graph_without_the_contract_is_refused_with_the_reason(tmp_path):
    _two_head_graph(tmp_path / "no_sent.onnx", sentiment_name="other")
    with pytest.raises(ValueError, match="sentiment_probabilities"):
        write_model_dir(tmp_path / "no_sent.onnx", tmp_path / "a", "x")
    _two_head_graph(tmp_path / "labels.onnx", labels=("angry", "happy"))
    with pytest.raises(ValueError, match="labels"):
        write_model_dir(tmp_path / "labels.onnx", tmp_path / "b", "x")


def _windows(rng):
    """Pooled features of synthetic speakers of the three corpora (clip label = emotion direction + noise)."""
    from onnx_models import whisper_probe as wp
    direction = {e: rng.normal(0, 1, 8) for e in EMOTIONS}
    spec = {"emovo": ("emovo-f1", "emovo-f2", "emovo-m1", "emovo-m2"), "ravdess": tuple(f"ravdess-0{i}" for i in range(1, 7)),
            "emodb": ("emodb-03", "emodb-08")}
    feats, clip, channel, leg, order, clips = [], [], [], [], [], []
    for corpus, speakers in spec.items():
        for speaker in speakers:
            sex = "f" if speaker[-1] in "f2468" or "-f" in speaker else "m"
            for e in EMOTIONS:
                cid = len(clips)
                clips.append(wp.Clip(corpus, speaker, sex, e, np.empty(0, np.float32)))
                for kind in wp.CHANNELS:
                    feats.append(np.tile(direction[e] + rng.normal(0, 0.5, 8), (wp.N_LAYERS, 1)))
                    clip.append(cid), channel.append(kind), leg.append(f"{corpus}/{speaker}|{kind}"), order.append(cid)
    return wp.Windows(np.array(feats, np.float16), np.array(clip), np.array(channel), np.array(leg), np.array(order), clips)


def test_the_head_leaves_out_the_folds_speakers_or_a_corpus(monkeypatch):
    w = _windows(np.random.default_rng(2))
    monkeypatch.setattr(whisper_head, "load_windows", lambda cache: w)
    everyone = whisper_head.train_head(None, "L1-5", "none")
    held = speaker_folds(w.clips)[0]
    fold = whisper_head.train_head(None, "L1-5", "none", holdout=0)
    assert set(map(str, fold["held_out"])) == held and held
    per_clip = 2            # windows per clip here: one per channel
    assert int(everyone["train_windows"]) - int(fold["train_windows"]) == per_clip * sum(c.speaker in held for c in w.clips)
    no_emovo = whisper_head.train_head(None, "L1-5", "none", exclude_corpora=frozenset({"emovo"}))
    assert int(everyone["train_windows"]) - int(no_emovo["train_windows"]) == per_clip * sum(c.corpus == "emovo" for c in w.clips)
    assert list(map(str, no_emovo["excluded_corpora"])) == ["emovo"]
    more = whisper_head.train_head(None, "L1-5", "none", holdout=0, exclude_speakers=frozenset({"emodb-03"}))
    assert set(map(str, more["held_out"])) == held | {"emodb-03"}
    assert int(fold["train_windows"]) - int(more["train_windows"]) == per_clip * len(EMOTIONS)
    with pytest.raises(ValueError, match="not in the cache"):
        whisper_head.train_head(None, "L1-5", "none", exclude_corpora=frozenset({"urdu"}))
    with pytest.raises(ValueError, match="no such speaker"):
        whisper_head.train_head(None, "L1-5", "none", exclude_speakers=frozenset({"urdu-01"}))
