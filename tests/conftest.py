import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Fixed thread counts in the tests and the programs they start: OpenBLAS's count changes results
# in the last bits, and the tests compare runs bit for bit while xdist's other worker loads the
# CPUs (edgemine.kernels.cpu.threads would otherwise adapt to it). tests/test_threads.py checks
# the adaptation itself.
os.environ.setdefault("EDGEMINE_THREADS", str(os.cpu_count() or 1))


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True)
def _numba_thread_count_restored():
    """Put numba's thread count back after each test: ``edgemine bench --threads 1`` sets it
    in-process, and a recurrent layer splits its batch by it (a later test in the same worker
    then chunks differently, which changes float32 sums in the last bit: test_resume compares
    an in-process run with a fresh process bit for bit). Only where numba's threads already
    run, so that no test starts them early."""
    yield
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is not None and getattr(parallel, "_is_initialized", False):
        import numba

        from edgemine.kernels.cpu import threads

        if numba.get_num_threads() != numba.config.NUMBA_NUM_THREADS:
            threads.set_numba_threads(numba.config.NUMBA_NUM_THREADS)
