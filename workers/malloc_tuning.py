"""A fixed glibc mmap threshold for the worker: large transient buffers go back to the OS when freed.

glibc serves an allocation of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with its own mmap and unmaps
it on free, but it raises that threshold to the size of every such block freed, up to 32 MiB. A worker frees
megabyte-sized buffers in every batch (the VAD's and the models' input arrays, onnxruntime's activations), so
after its first batches they come from the heap, and the heap keeps its high-water mark, fragmented: the RSS
after a drain then grew with the number of live calls about 1.6 times as fast as the live state does.
Setting the threshold once turns the adjustment off. Measured (``callpulse bench`` drains of 100 to 800 calls,
README "Benchmark", stop 27): RSS per live call ~120 -> ~73 kB, 30-80 MB less in all, no CPU cost in interleaved drains.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)
M_MMAP_THRESHOLD = -3           # glibc <malloc.h>
ENV_OVERRIDE = "MALLOC_MMAP_THRESHOLD_"   # glibc's own variable: an operator who sets it keeps it


def fix_mmap_threshold(nbytes: int) -> bool:
    """``mallopt(M_MMAP_THRESHOLD, nbytes)``; True when applied. A no-op (False) with ``nbytes`` 0, when the
    environment already sets glibc's threshold, or where the C library has no ``mallopt`` (musl, macOS)."""
    if nbytes <= 0 or ENV_OVERRIDE in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = mallopt(M_MMAP_THRESHOLD, nbytes) == 1
    if not applied:
        log.warning("mallopt(M_MMAP_THRESHOLD, %d) was refused; keeping glibc's adaptive threshold", nbytes)
    return applied
