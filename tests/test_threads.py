"""The thread policy (edgemine.kernels.cpu.threads): the CPUs a process may use, and OpenBLAS
on one thread while other programs keep them busy, unless the counts are pinned."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from edgemine.kernels.cpu import blas, threads


@pytest.fixture
def adaptive(monkeypatch):
    """The policy unpinned (the suite pins it), started, and due to look at once."""
    threads.adapt()  # starts it if this worker has not yet (pinned by conftest's variable)
    monkeypatch.setattr(threads, "_pinned", None)
    monkeypatch.setattr(threads._watch, "due", 0.0)
    before = blas.blas_threads()
    yield
    blas.set_blas_threads(before)


@pytest.mark.skipif(blas.blas_threads() is None, reason="no OpenBLAS thread control")
def test_openblas_drops_to_one_thread_while_others_are_busy(adaptive, monkeypatch):
    monkeypatch.setattr(threads._watch, "others", lambda: 1.7)
    threads.adapt()
    assert blas.blas_threads() == 1
    monkeypatch.setattr(threads._watch, "others", lambda: 0.1)
    threads._watch.due = 0.0
    threads.adapt()
    assert blas.blas_threads() == threads.available_cpus()


@pytest.mark.skipif(blas.blas_threads() is None, reason="no OpenBLAS thread control")
def test_pinned_counts_do_not_adapt(adaptive, monkeypatch):
    threads.pin(2)
    blas.set_blas_threads(2)
    monkeypatch.setattr(threads._watch, "others", lambda: 1.7)
    threads.adapt()
    assert blas.blas_threads() == 2


def test_the_load_watch_sees_another_process_and_not_its_own_work():
    """A spinning child shows up as other programs' load (this process's own CPU time is
    subtracted: its busy loop alone reads as less than a core)."""
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat")
    watch = threads.LoadWatch(None)
    watch.others()
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        pass  # our own work
    own = watch.others()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.6)
        watch.others()
        time.sleep(0.6)
        theirs = watch.others()
    finally:
        child.kill()
        child.wait()
    assert own is not None and theirs is not None
    assert theirs > 0.25  # the child spun all the while (a core, less what others took)


def test_available_cpus_respect_the_affinity():
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert threads.available_cpus() in range(1, allowed + 1)


@pytest.mark.skipif(blas.blas_threads() is None, reason="no OpenBLAS thread control")
def test_load_on_cpus_this_process_would_not_use_is_no_contention(adaptive, monkeypatch):
    """A container limited to 2 CPUs of a 16-CPU host: 1.7 busy cores of other tenants leave
    plenty idle, so OpenBLAS keeps its 2 threads; 14.7 do not."""
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    monkeypatch.setattr(threads._watch, "count", 16)
    blas.set_blas_threads(2)
    monkeypatch.setattr(threads._watch, "others", lambda: 1.7)
    threads.adapt()
    assert blas.blas_threads() == 2
    monkeypatch.setattr(threads._watch, "others", lambda: 14.7)
    threads._watch.due = 0.0
    threads.adapt()
    assert blas.blas_threads() == 1
