"""The Whisper-base loader, the CTranslate2 reader and the 8 kHz front end, on small synthetic inputs: no torch, no
145 MB model, no network."""

import hashlib
import struct

import numpy as np
import pytest
from scipy.signal import resample_poly

from onnx_models import whisper_frontend as wf
from onnx_models.whisper_ct2 import CT2FormatError, read_model
from onnx_models.whisper_package import MODEL_BYTES, ModelIntegrityError, join_parts, model_dir


def _parts(tmp_path, chunks):
    paths = []
    for i, data in enumerate(chunks):
        p = tmp_path / f"model.bin.part{i + 1}"
        p.write_bytes(data)
        paths.append(p)
    return paths


def test_join_parts_writes_the_file_when_hash_and_size_match(tmp_path):
    chunks = [b"first half " * 1000, b"second half" * 777]
    whole = b"".join(chunks)
    dest = join_parts(_parts(tmp_path, chunks), tmp_path / "out" / "model.bin", hashlib.sha256(whole).hexdigest(), len(whole))
    assert dest.read_bytes() == whole


@pytest.mark.parametrize("flip", ["content", "size", "order"])
def test_join_parts_refuses_any_other_bytes_and_leaves_nothing(tmp_path, flip):
    chunks = [b"A" * 5000, b"B" * 3000]
    whole = b"".join(chunks)
    sha, size = hashlib.sha256(whole).hexdigest(), len(whole)
    if flip == "content":
        chunks[1] = b"B" * 2999 + b"C"
    elif flip == "size":
        chunks[1] = b"B" * 2999
    else:
        chunks.reverse()
    out = tmp_path / "out"
    with pytest.raises(ModelIntegrityError, match="expected"):
        join_parts(_parts(tmp_path, chunks), out / "model.bin", sha, size)
    assert list(out.iterdir()) == []      # no model.bin, no .partial left behind


def test_a_cached_model_that_is_not_the_pinned_one_is_refused(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"\0" * 1024)
    with pytest.raises(ModelIntegrityError, match="not the pinned"):
        model_dir(tmp_path)
    assert MODEL_BYTES == 145_217_532


def _write_ct2(path, variables, aliases=(), version=6):
    """A CTranslate2 model.bin written from the format's description (the reader must parse what this writes)."""
    ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.float16): 4}

    def string(s):
        raw = s.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw
    out = struct.pack("<I", version) + string("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, arr in variables.items():
        out += string(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
        out += struct.pack("<BI", ids[arr.dtype], arr.nbytes) + arr.tobytes()
    out += struct.pack("<I", len(aliases)) + b"".join(string(a) + string(t) for a, t in aliases)
    path.write_bytes(out)


def test_ct2_reader_round_trip_prefix_and_aliases(tmp_path):
    rng = np.random.default_rng(0)
    variables = {"decoder/embeddings/weight": rng.normal(size=(5, 4)).astype(np.float16),
                 "encoder/conv1/weight": rng.normal(size=(8, 3, 3)).astype(np.float16),
                 "encoder/num_heads": np.array(8, np.int16),
                 "encoder/scale": np.array([0.5, 2.0], np.float32)}
    _write_ct2(tmp_path / "model.bin", variables, aliases=[("encoder/alias", "encoder/scale")])
    spec, got = read_model(tmp_path, prefix="encoder/")
    assert spec == "WhisperSpec"
    assert sorted(got) == ["encoder/alias", "encoder/conv1/weight", "encoder/num_heads", "encoder/scale"]
    for name in ("encoder/conv1/weight", "encoder/num_heads", "encoder/scale"):
        assert got[name].dtype == variables[name].dtype and np.array_equal(got[name], variables[name])
    assert np.array_equal(got["encoder/alias"], variables["encoder/scale"])


def test_ct2_reader_rejects_other_versions_and_truncated_files(tmp_path):
    variables = {"encoder/w": np.ones((4, 4), np.float32)}
    _write_ct2(tmp_path / "model.bin", variables, version=5)
    with pytest.raises(CT2FormatError, match="version 5"):
        read_model(tmp_path / "model.bin")
    _write_ct2(tmp_path / "model.bin", variables)
    raw = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(raw[:-20])
    with pytest.raises(CT2FormatError):
        read_model(tmp_path / "model.bin")


def test_front_end_at_8khz_equals_whispers_on_the_upsampled_signal():
    """The 200-point, 80-sample-hop DFT at 8 kHz (power x 4) must give Whisper's 400-point / 160-hop log-mels of
    the same audio upsampled to 16 kHz, band by band below 4 kHz."""
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 8000
    x = (0.2 * np.sin(2 * np.pi * 310 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.normal(size=t.size)).astype(np.float32)
    ours = wf.log_mel(x)[0]
    up = resample_poly(x, 2, 1)
    pad = np.pad(up, 200, mode="reflect")
    n = np.arange(400)
    frames = np.stack([pad[i * 160: i * 160 + 400] for i in range(len(up) // 160)]) * (0.5 - 0.5 * np.cos(2 * np.pi * n / 400))
    mel = np.log10(np.maximum(np.abs(np.fft.rfft(frames, axis=1)) ** 2 @ wf.whisper_mel_filters().T, 1e-10))
    ref = ((np.maximum(mel, mel.max() - 8.0) + 4.0) / 4.0).T
    assert ours.shape == ref.shape == (80, 200)
    # Bands wholly under 3.6 kHz (bin 90): above it resample_poly's anti-imaging filter already attenuates the
    # reference. Edge frames are left out: reflect padding of the two signals differs there.
    passband = wf.whisper_mel_filters()[:, 90:].sum(1) == 0
    assert passband.sum() >= 58
    err = np.abs(ours[passband, 2:-2] - ref[passband, 2:-2])
    assert np.median(err) < 0.001 and err.max() < 0.01


def test_mel_filters_match_whispers_own_when_available():
    whisper = pytest.importorskip("whisper", reason="openai-whisper not installed (training venv only)")
    import os
    ref = np.load(os.path.join(os.path.dirname(whisper.__file__), "assets", "mel_filters.npz"))["mel_80"]
    np.testing.assert_allclose(wf.whisper_mel_filters(), ref, atol=1e-6)


def test_installed_packages_join_to_the_pinned_model(tmp_path):
    """With the `encoder` extra installed: the two packages' halves give exactly the pinned model.bin."""
    from onnx_models.whisper_package import MODEL_SHA256, SIDE_FILES, installed_parts, sha256_of
    try:
        parts = installed_parts()
    except ModuleNotFoundError as e:
        pytest.skip(str(e))
    folder = model_dir(tmp_path / "cache", parts)
    assert sha256_of(folder / "model.bin") == MODEL_SHA256
    assert all((folder / name).stat().st_size > 0 for name in SIDE_FILES)
