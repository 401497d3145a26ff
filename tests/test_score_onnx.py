"""Scoring the shipped ONNX files on a labelled corpus folder (score_onnx), and laying out EmoDB (prepare_emodb)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from onnx_models import prepare_emodb, score_onnx
from onnx_models.data import load_corpus, load_extra_training

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_emodb_file_names_give_speaker_sex_and_emotion():
    assert prepare_emodb.parse_name("03a01Wa") == ("emodb_03", "m", "angry")
    assert prepare_emodb.parse_name("16b10Lb") == ("emodb_16", "f", "bored")
    for bad in ("03a01Xa", "04a01Wa", "03a01W", "Actor_01"):
        with pytest.raises(ValueError, match="not an EmoDB file name"):
            prepare_emodb.parse_name(bad)


def test_prepare_emodb_writes_16khz_flac_and_labels(tmp_path):
    src = tmp_path / "wav"
    src.mkdir()
    t = np.arange(int(1.5 * 22050)) / 22050
    for name, f0 in (("03a01Wa", 150.0), ("08b02Tc", 220.0)):
        sf.write(src / f"{name}.wav", (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), 22050, subtype="PCM_16")
    out = tmp_path / "emodb"
    assert prepare_emodb.prepare(src, out) == 2
    clips = load_corpus("emodb", tmp_path)      # the layout the training and scoring code reads
    assert [(c.speaker, c.sex, c.emotion) for c in clips] == [("emodb_03", "m", "angry"), ("emodb_08", "f", "sad")]
    audio, rate = sf.read(out / "wav" / "08b02Tc.flac")
    assert rate == 16000 and abs(len(audio) - 1.5 * 16000) <= 1
    peak_hz = np.argmax(np.abs(np.fft.rfft(audio))) * rate / len(audio)
    assert abs(peak_hz - 220.0) < 2.0


def _corpus_from_shared(tmp_path: Path, speakers: set[str], relabel_as_bored: int) -> Path:
    """A corpus folder of some shared speakers' clips (paths into ../shared), a few of them relabelled 'bored'."""
    rows = []
    for corpus in ("ravdess", "emovo"):
        with open(DATA / corpus / "labels.csv", newline="") as f:
            rows += [{**r, "file": str(DATA / corpus / r["file"])} for r in csv.DictReader(f) if r["speaker"] in speakers]
    for r in rows[:relabel_as_bored]:
        r["emotion"] = "bored"
    folder = tmp_path / "mixed"
    folder.mkdir()
    with open(folder / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "speaker", "sex", "emotion"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return folder


@pytest.mark.skipif(not (DATA / "ravdess" / "labels.csv").exists(), reason="the corpora (../shared/data) are not beside the repository")
def test_score_onnx_runs_the_shipped_files_on_a_corpus_folder(tmp_path, capsys):
    # Speakers the shipped models were trained on: this checks the scoring path (windows, label restriction,
    # both files through the workers' contract), not accuracy on unseen speech -- a broken label order, sample
    # rate or window cut would drop it to chance (1/8).
    folder = _corpus_from_shared(tmp_path, {"ravdess-01", "ravdess-02"}, relabel_as_bored=4)
    out = tmp_path / "r.json"
    assert score_onnx.main([str(folder), "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["corpus"] == "mixed" and r["clips"] == 120 and r["speakers"] == 2
    assert r["unscored_emotions"] == ["bored"]
    assert r["labels"] == ["angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]
    for kind in ("clean", "telephone"):
        clip = r[kind]["clip"]
        assert clip["emotion"]["n"] == 116                      # the 4 'bored' clips are not scored on emotion
        assert clip["emotion"]["ua"] > 0.5
        assert clip["sentiment_head"]["ua"] > 0.5
        assert set(clip["per_sex_ua"]) == {"f", "m"}
    assert "mixed: 120 clips, 2 speakers" in capsys.readouterr().out


@pytest.mark.skipif(not (DATA / "ravdess" / "labels.csv").exists(), reason="the corpora (../shared/data) are not beside the repository")
def test_telephone_rate_files_score_like_the_same_speech_at_16khz(tmp_path):
    # Labelled calls come at 8 kHz: the same clips stored at 8 kHz (float WAV) must give the same scores.
    folder16 = _corpus_from_shared(tmp_path, {"ravdess-03"}, relabel_as_bored=0)
    folder8 = tmp_path / "calls8k"
    (folder8 / "audio").mkdir(parents=True)
    rows = ["file,speaker,sex,emotion"]
    for i, c in enumerate(load_corpus(folder16.name, tmp_path)):
        sf.write(folder8 / "audio" / f"{i}.wav", c.audio, 8000, subtype="FLOAT")
        rows.append(f"audio/{i}.wav,{c.speaker},{c.sex},{c.emotion}")
    (folder8 / "labels.csv").write_text("\n".join(rows) + "\n")
    models = score_onnx.default_model_dir()
    r16 = score_onnx.score_corpus(load_corpus(folder16.name, tmp_path), models)
    r8 = score_onnx.score_corpus(load_corpus(folder8.name, tmp_path), models)
    for kind in ("clean", "telephone"):
        assert r8[kind]["clip"]["confusion"] == r16[kind]["clip"]["confusion"]
    assert r8["clean"]["clip"]["emotion"]["ua"] > 0.5


def test_score_onnx_refuses_a_corpus_that_shares_too_few_emotions(tmp_path):
    folder = tmp_path / "odd"
    (folder / "wav").mkdir(parents=True)
    tone = (0.2 * np.sin(2 * np.pi * 200 * np.arange(32000) / 16000)).astype(np.float32)
    sf.write(folder / "wav" / "a.flac", tone, 16000)
    (folder / "labels.csv").write_text("file,speaker,sex,emotion\nwav/a.flac,s1,f,bored\nwav/a.flac,s1,f,angry\n")
    with pytest.raises(ValueError, match="fewer than two emotions"):
        score_onnx.main([str(folder)])


def test_load_corpus_refuses_stereo_and_low_rate_audio(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    sf.write(folder / "stereo.wav", np.zeros((16000, 2), np.float32), 16000)
    sf.write(folder / "slow.wav", np.zeros(4000, np.float32), 4000)
    for name in ("stereo.wav", "slow.wav"):
        (folder / "labels.csv").write_text(f"file,speaker,sex,emotion\n{name},s1,f,angry\n")
        with pytest.raises(ValueError, match="expected mono audio"):
            load_corpus("bad", tmp_path)


def test_extra_training_corpora_keep_only_emotions_the_model_has(tmp_path):
    # EmoDB laid out by prepare_emodb, trained on with --extra-train: its bored clips have no class, so they are
    # left out; a folder with no emotion the model knows is refused rather than silently adding nothing.
    src = tmp_path / "wav"
    src.mkdir()
    speech = (0.3 * np.sin(2 * np.pi * 180 * np.arange(16000) / 16000)).astype(np.float32)
    for name in ("03a01Wa", "03a02Lb", "08b02Tc"):
        sf.write(src / f"{name}.wav", speech, 16000)
    prepare_emodb.prepare(src, tmp_path / "emodb")
    clips = load_extra_training([tmp_path / "emodb"])
    assert [(c.corpus, c.speaker, c.emotion) for c in clips] == [("emodb", "emodb_03", "angry"), ("emodb", "emodb_08", "sad")]
    assert all(c.audio.shape == (8000,) for c in clips)          # at the models' 8 kHz
    bored = tmp_path / "bored"
    bored.mkdir()
    (bored / "labels.csv").write_text(f"file,speaker,sex,emotion\n{src / '03a02Lb.wav'},s1,m,bored\n")
    with pytest.raises(ValueError, match="none of its emotions"):
        load_extra_training([bored])
