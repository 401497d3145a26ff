"""Read a CTranslate2 ``model.bin`` into numpy arrays (no ctranslate2, no torch needed).

The file (binary version 6, as written by CTranslate2's ``ModelSpec``): little-endian ``uint32`` version, the spec
name and ``uint32`` revision, ``uint32`` variable count, then per variable its name, ``uint8`` rank, ``uint32``
dims, ``uint8`` dtype id and ``uint32`` byte count followed by the raw values; last, ``uint32`` alias count and
(alias, target) name pairs. Strings are ``uint16`` length (including a final NUL) and the bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

SUPPORTED_BINARY_VERSION = 6
# CTranslate2's DataType ids (include/ctranslate2/types.h).
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
BFLOAT16_ID = 5


class CT2FormatError(ValueError):
    """Not a CTranslate2 model.bin this reader understands."""


def _unpack(f: BinaryIO, fmt: str) -> tuple:
    size = struct.calcsize("<" + fmt)
    raw = f.read(size)
    if len(raw) != size:
        raise CT2FormatError(f"model.bin ends early at byte {f.tell()} (wanted {size} more bytes)")
    return struct.unpack("<" + fmt, raw)


def _string(f: BinaryIO) -> str:
    (n,) = _unpack(f, "H")
    raw = f.read(n)
    if len(raw) != n or not raw.endswith(b"\0"):
        raise CT2FormatError(f"bad string of {n} bytes at byte {f.tell()}")
    return raw[:-1].decode("utf-8")


def read_model(path: Path, prefix: str = "") -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, {variable name: array}) of the CTranslate2 model file at ``path`` (a model.bin or its folder);
    only variables whose name starts with ``prefix`` are loaded (e.g. ``"encoder/"``), the rest are skipped.
    Aliases resolve to their target's array. bfloat16 is refused (numpy has no such dtype)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        (version,) = _unpack(f, "I")
        if version != SUPPORTED_BINARY_VERSION:
            raise CT2FormatError(f"{path}: CTranslate2 binary version {version}; this reader knows version {SUPPORTED_BINARY_VERSION}")
        spec = _string(f)
        _unpack(f, "I")   # spec revision
        (count,) = _unpack(f, "I")
        for _ in range(count):
            name = _string(f)
            (rank,) = _unpack(f, "B")
            dims = _unpack(f, "I" * rank) if rank else ()
            dtype_id, nbytes = _unpack(f, "BI")
            if not name.startswith(prefix):
                f.seek(nbytes, 1)
                continue
            if dtype_id not in DTYPES:
                raise CT2FormatError(f"{name}: dtype id {dtype_id} is not supported" + (" (bfloat16)" if dtype_id == BFLOAT16_ID else ""))
            raw = f.read(nbytes)
            values = np.frombuffer(raw, DTYPES[dtype_id])
            if len(raw) != nbytes or values.size != int(np.prod(dims)):
                raise CT2FormatError(f"{name}: {nbytes} bytes do not hold shape {dims} of {np.dtype(DTYPES[dtype_id]).name}")
            out[name] = values.reshape(dims)
        (aliases,) = _unpack(f, "I")
        for _ in range(aliases):
            alias, target = _string(f), _string(f)
            if alias.startswith(prefix) and target in out:
                out[alias] = out[target]
    return spec, out
