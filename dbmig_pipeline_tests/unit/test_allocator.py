"""The fixed mmap threshold: a freed batch-sized buffer does not pull the next one into the heap.

Each case runs in a fresh interpreter: the allocator's state is per process.
"""
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt and mallinfo2 are glibc's")

# Allocates a column-buffer-sized block, frees it, allocates another and prints how many bytes of
# mmapped blocks the second one added (glibc's mallinfo2().hblkhd).
_CHILD = """
import ctypes, sys
from dbmig_pipeline.engine.allocator import fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
print(fix_mmap_threshold() if sys.argv[1] == "fix" else "untouched")
first = bytearray(512 * 1024)
del first
before = libc.mallinfo2().hblkhd
second = bytearray(512 * 1024)
print(libc.mallinfo2().hblkhd - before)
"""


def _run(mode: str, **env: str) -> tuple[str, int]:
    # glibc's defaults, whatever the environment of the test run tunes
    child_env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")} | env
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], env=child_env, capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    return out[0], int(out[1])


def test_a_freed_large_block_raises_glibcs_threshold_by_default():
    """The behaviour the module exists for: without it the second block comes from the heap."""
    assert _run("leave") == ("untouched", 0)


def test_with_the_threshold_fixed_the_next_large_block_is_mapped_again():
    fixed, mapped = _run("fix")
    assert fixed == "True"
    assert mapped >= 512 * 1024


def test_the_environment_decides_when_it_sets_the_threshold():
    fixed, mapped = _run("fix", MALLOC_MMAP_THRESHOLD_=str(64 * 1024 * 1024))
    assert fixed == "False"
    assert mapped == 0  # the environment's 64 MiB threshold keeps a 512 KiB block in the heap


def test_glibc_tunables_decide_too():
    fixed, mapped = _run("fix", GLIBC_TUNABLES=f"glibc.malloc.check=0:glibc.malloc.mmap_threshold={64 * 1024 * 1024}")
    assert fixed == "False"
    assert mapped == 0


def test_other_tunables_leave_the_threshold_to_dbmig():
    fixed, mapped = _run("fix", GLIBC_TUNABLES="glibc.malloc.check=0")
    assert fixed == "True"
    assert mapped >= 512 * 1024
