"""Thread counts that follow the CPUs this process may use and the load other programs put on
them.

Measured on a 2-core AMD EPYC (``tools/contention_probe.py``, seed CNN, batch-32 training step):
quiet, OpenBLAS on both cores takes 10 ms and on one 16 ms; while another program multiplies
matrices on numpy's default threads, OpenBLAS on both cores takes 76 ms (its workers busy-wait
for each other while the other program holds a core) and on one 19 ms. Numba's workqueue
threads do not spin and lose little (one Numba thread: 32 ms busy). So:

* Numba and OpenBLAS use the CPUs this process may run on (its affinity, and a cgroup CPU quota
  such as a container's ``--cpus``), not every CPU of the host;
* before each batch (at most every ``INTERVAL`` seconds) the CPU time the *other* processes used
  on those CPUs is read from ``/proc/stat``, less this process's own; when they leave fewer
  idle CPUs than this process's threads need (they use more than ``BUSY_CORES`` cores beyond
  the CPUs this process does not use: a container's quota on a larger host), OpenBLAS runs on
  one thread until they stop.

OpenBLAS's thread count changes results in the last bits (its products are summed in another
order), so runs on a machine whose load changes are not bit-for-bit repeatable.
:func:`pin` (``edgemine.runtime.limit_threads``, or the ``EDGEMINE_THREADS`` variable) fixes both
counts and turns the adaptation off, for runs that must agree bit for bit.

>>> available_cpus() >= 1
True
"""

from __future__ import annotations

import math
import os
import time

#: seconds between two looks at the machine's load
INTERVAL = 0.25
#: other programs' average use, in cores, above which OpenBLAS goes down to one thread
BUSY_CORES = 0.5

_pinned: int | None = None
_started = False
_watch = None


def _cgroup_quota() -> float | None:
    """CPUs allowed by a cgroup quota (v2 ``cpu.max``, v1 ``cfs_quota_us``), or None."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def _allowed() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def available_cpus() -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup CPU quota."""
    allowed = _allowed()
    n = len(allowed) if allowed else (os.cpu_count() or 1)
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


class LoadWatch:
    """The cores that other processes kept busy on this process's CPUs since the last look."""

    def __init__(self, cpus: list[int] | None):
        self.names = None if cpus is None else {f"cpu{c}" for c in cpus}
        #: how many CPUs are watched
        self.count = len(cpus) if cpus is not None else (os.cpu_count() or 1)
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last: tuple[float, float, float] | None = None
        self.due = 0.0  # when adapt() looks again

    def _busy_seconds(self) -> float | None:
        """CPU time spent not idle on the watched CPUs, since boot (None without /proc)."""
        try:
            with open("/proc/stat") as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        total = 0
        for line in lines:
            name, _, rest = line.partition(" ")
            if not name.startswith("cpu") or name == "cpu":
                continue
            if self.names is not None and name not in self.names:
                continue
            fields = [int(v) for v in rest.split()]
            total += sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
        return total / self.tick

    def others(self) -> float | None:
        """Average cores used by other processes since the previous call (None at first)."""
        now, own, busy = time.monotonic(), time.process_time(), self._busy_seconds()
        if busy is None:
            return None
        last, self.last = self.last, (now, own, busy)
        if last is None or now - last[0] <= 0:
            return None
        return max(0.0, (busy - last[2]) - (own - last[1])) / (now - last[0])


def pin(threads: int | None) -> None:
    """Fix Numba's and OpenBLAS's thread counts at ``threads`` (no adaptation); None: adapt."""
    global _pinned
    _pinned = None if threads is None else max(1, int(threads))


def set_numba_threads(n: int) -> None:
    """Numba's thread count for the calling thread, and whether the loop kernels' parallel
    builds run at all (``_jit.PARALLEL_MIN_THREADS``)."""
    import numba

    from . import _jit

    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    _jit.parallel_ok = n >= _jit.PARALLEL_MIN_THREADS


def _start() -> None:
    """Numba's and OpenBLAS's counts from the CPUs this process may use (once)."""
    global _started, _watch
    _started = True
    env = os.environ.get("EDGEMINE_THREADS", "").strip()
    if env.isdigit() and int(env) > 0 and _pinned is None:
        pin(int(env))
    from . import blas

    n = _pinned or available_cpus()
    set_numba_threads(n)
    blas.set_blas_threads(n)
    _watch = LoadWatch(_allowed())
    _watch.others()  # the baseline of the first interval
    _watch.due = time.monotonic() + INTERVAL


def adapt() -> None:
    """Called before each batch: OpenBLAS on one thread while other programs keep this
    process's CPUs busy, on all of them otherwise (unless pinned). Costs a clock read except
    every ``INTERVAL`` seconds."""
    if not _started:
        _start()
    if _pinned is not None or _watch is None:
        return
    now = time.monotonic()
    if now < _watch.due:
        return
    _watch.due = now + INTERVAL
    others = _watch.others()
    if others is None:
        return
    from . import blas

    ours = available_cpus()
    spare = max(0, _watch.count - ours)  # CPUs this process would not use anyway
    want = 1 if others > spare + BUSY_CORES else ours
    if blas.blas_threads() != want and not blas.inside_single_threaded():
        blas.set_blas_threads(want)
