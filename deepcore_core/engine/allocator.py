"""Keep freed memory in the process, so that batch after batch reuses the same pages.

glibc's ``malloc`` serves a large request (above a threshold that starts at 128 KiB and
grows to at most 32 MiB) with fresh pages from the system and returns them when the block
is freed; it also returns the top of its heap once more than a trim threshold is free
there. A CPU forward pass allocates and frees its activations, megabytes, for every batch;
whether glibc keeps those blocks for the next batch or hands them back (so that the next
batch writes to fresh pages, each first write a page fault that zero-fills 4 KiB) depends
on what ran before, so the same pass is sometimes fast and sometimes slow. Where page
faults are dear (a virtual machine's nested paging) the slow case costs more than the
arithmetic. LeNet's embedding pass over 60,000 Fashion-MNIST images right after training
it (as ``deepcore select`` runs), six fresh processes each way, two runs: with glibc's
default, medians 1.67 and 1.64 s, slowest 2.84 and 1.79 s (in throwaway runs a slow pass
took about 560,000 page faults); with freed memory kept, medians 1.51 and 1.68 s, slowest
1.68 and 1.72 s (``benchmarks/memory_and_batch.py``, part 4).

:func:`keep_freed_memory` raises both thresholds (``mallopt``), so blocks up to
:data:`MMAP_THRESHOLD` come from the heap and freed memory stays in the process up to
:data:`TRIM_THRESHOLD` at the heap's top, for the next batch to reuse. The process's memory
then shrinks less after a peak; the peak itself is the same. Nothing changes but where
memory comes from: every value computed is the same.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's ``mallopt`` parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: blocks up to this size come from the heap (glibc's default: 128 KiB rising to 32 MiB)
MMAP_THRESHOLD = 256 * 2**20
#: free memory at the heap's top kept for reuse (glibc's default: twice the mmap threshold)
TRIM_THRESHOLD = 512 * 2**20
#: set to 0 to leave the allocator as it is
OPT_OUT = "DEEPCORE_KEEP_FREED_MEMORY"
#: glibc's own settings: where the user set one, theirs stand
GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); returns whether they
    are raised. Does nothing off glibc, with ``DEEPCORE_KEEP_FREED_MEMORY=0``, or where the
    environment sets glibc's allocator itself."""
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if os.environ.get(OPT_OUT, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    if any(os.environ.get(name) for name in GLIBC_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl's mallopt does nothing)
    except (OSError, AttributeError):
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
