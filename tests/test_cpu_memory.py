"""The CPU backend keeps freed memory for the next batch (glibc's malloc thresholds)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgemine.kernels.cpu import memory

CHILD = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from edgemine.kernels.cpu import memory
    assert memory.keep_freed_memory()
def batch():  # a batch's temporaries: a few arrays of several MB, allocated, filled, freed
    arrays = [np.ones(2_000_000, np.float32) for _ in range(3)]
    del arrays
for _ in range(3):
    batch()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    batch()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 20)
"""


class FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 1


def test_sets_both_thresholds():
    libc = FakeLibc()
    assert memory.keep_freed_memory(libc, environ={})
    assert sorted(libc.calls) == [
        (memory.M_MMAP_THRESHOLD, memory.MMAP_THRESHOLD),
        (memory.M_TRIM_THRESHOLD, memory.TRIM_THRESHOLD),
    ]


@pytest.mark.parametrize(
    "environ",
    [{"MALLOC_ARENA_MAX_": "2"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}],
)
def test_a_users_own_malloc_settings_are_kept(environ):
    libc = FakeLibc()
    assert not memory.keep_freed_memory(libc, environ=environ)
    assert libc.calls == []


@pytest.mark.skipif(memory._glibc() is None, reason="glibc's malloc only")
def test_batches_reuse_their_pages():
    """Without the thresholds every batch maps its temporaries afresh (hundreds of page faults);
    with them the freed pages serve the next batch."""

    def faults(mode):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True
        )
        return float(out.stdout.split()[-1])

    default, kept = faults("default"), faults("keep")
    assert kept < 50, (kept, default)  # 0 here, against 808 by default (glibc 2.36, x86-64)
    assert kept <= default
