"""Keep freed memory for the next batch instead of handing it back to the kernel.

A training step allocates and frees the same large arrays every batch (patch matrices,
activations, gradients: tens of MB for the seed CNN). glibc's malloc returns the top of its heap
to the kernel once more than its trim threshold is free there, and serves blocks above its mmap
threshold with fresh mappings, so the next batch touches new pages again: measured on the 2-core
AMD EPYC, 140-210 page faults per seed-CNN training step and 0.3-0.9 ms of kernel CPU time
(OpenBLAS's threads fault on the pages too, and unmapping them interrupts every core that ran
them). With the thresholds below: 9 faults a step and 0.04 ms.

The cost is memory the process keeps: up to ``TRIM_THRESHOLD`` of freed heap stays mapped. Blocks
above ``MMAP_THRESHOLD`` (a whole data set) are still mapped and returned on their own. Only
glibc has these knobs (Linux, Raspberry Pi OS, Jetson's L4T); elsewhere nothing changes. A user who
tunes malloc themselves (``MALLOC_*_`` variables or ``GLIBC_TUNABLES``) keeps their settings.
"""

from __future__ import annotations

import ctypes
import os

#: blocks up to this size come from the heap (glibc's own dynamic threshold stops at 32 MB too)
MMAP_THRESHOLD = 32 << 20
#: free memory at the heap's top that is kept rather than returned (several batches' worth)
TRIM_THRESHOLD = 64 << 20

# mallopt parameter numbers, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: whether this process has been through ``keep_freed_memory`` (set or left alone)
configured = False


def _user_tuned(environ) -> bool:
    return "glibc.malloc" in environ.get("GLIBC_TUNABLES", "") or any(
        k.startswith("MALLOC_") and k.endswith("_") for k in environ
    )


def _glibc():
    """The C library if it is glibc, else None. The process's own symbols, not
    ``ctypes.util.find_library``, which runs ``ldconfig`` in a subprocess (3 ms here, more on a
    Pi, in the first batch's time)."""
    try:
        libc = ctypes.CDLL(None)
    except (OSError, TypeError):  # Windows has no process-wide handle
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None  # musl, macOS: their allocators have other rules
    return libc


def keep_freed_memory(libc=None, environ=None) -> bool:
    """Set glibc's thresholds, once per process; True if they were set by this call.

    ``libc`` and ``environ`` replace the C library and ``os.environ`` (tests).

    >>> isinstance(keep_freed_memory(), bool)
    True
    """
    global configured
    if libc is None:
        if configured:
            return False
        configured = True
        libc = _glibc()
        if libc is None:
            return False
    if _user_tuned(os.environ if environ is None else environ):
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
