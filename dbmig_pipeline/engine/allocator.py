"""Large buffers straight from the kernel, so that a batch's memory goes back when it is done.

glibc's malloc serves an allocation above its mmap threshold (128 KiB at
start) with a mapping of its own, which free() returns to the kernel. But
once such a block is freed, glibc raises the threshold to that block's size
(up to 32 MiB): from then on a batch's column buffers (80 KiB to a few MiB)
are carved out of the per-thread arenas of the reader and the writers, where
freed space stays resident in fragments. Fixing the threshold at 256 KiB
keeps them out: ~20 MiB less peak RSS for a full load at scale 1.0, for
more page faults (decision 0008; BENCHMARKS.md, seventh round). At 1 MiB it gave nothing
back: the fragments are the mid-sized column buffers.

A threshold set in the environment still decides (`MALLOC_MMAP_THRESHOLD_`
or `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`: glibc reads them at
start-up; this leaves them alone).
"""
from __future__ import annotations

import ctypes
import os
import platform
import threading

#: mallopt's parameter number for the mmap threshold (glibc's malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024

_lock = threading.Lock()
_decided: bool | None = None


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold for the rest of the process (decided once; later calls are free).

    False, and nothing changed, where the C library is not glibc or the
    environment sets the threshold itself.
    """
    global _decided
    with _lock:
        if _decided is None:
            _decided = _fix()
        return _decided


def _fix() -> bool:
    if _set_by_environment() or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1


def _set_by_environment() -> bool:
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or any(
        t.split("=", 1)[0].strip() == "glibc.malloc.mmap_threshold" for t in tunables.split(":"))
