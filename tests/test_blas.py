"""OpenBLAS's sgemm called from jitted code (edgemine.kernels.cpu.blas) against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from edgemine.kernels.cpu import blas

pytestmark = pytest.mark.skipif(not blas.SGEMM, reason="numpy's OpenBLAS sgemm was not found")


@njit(cache=True, nogil=True)
def _gemm(addr, trans_a, trans_b, alpha, a, b, beta, c):
    m, n = c.shape
    k = a.shape[0] if trans_a == blas.TRANS else a.shape[1]
    blas.sgemm(addr, trans_a, trans_b, m, n, k, alpha, a, a.shape[1], b, b.shape[1], beta, c, n)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(1, 40),
    n=st.integers(1, 40),
    k=st.integers(1, 40),
    trans_a=st.booleans(),
    trans_b=st.booleans(),
    beta=st.sampled_from([0.0, 1.0, -0.5]),
    seed=st.integers(0, 1000),
)
def test_sgemm_from_jitted_code_matches_numpy(m, n, k, trans_a, trans_b, beta, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
    c = rng.standard_normal((m, n)).astype(np.float32)
    want = 1.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + beta * c
    ta = blas.TRANS if trans_a else blas.NO_TRANS
    tb = blas.TRANS if trans_b else blas.NO_TRANS
    _gemm(blas.SGEMM, np.int32(ta), np.int32(tb), np.float32(1.5), a, b, np.float32(beta), c)
    np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-4)


def test_single_threaded_restores_the_thread_count():
    before = blas.blas_threads()
    with blas.single_threaded():
        assert blas.blas_threads() == 1
    assert blas.blas_threads() == before
    with pytest.raises(RuntimeError), blas.single_threaded():
        raise RuntimeError("an error inside the block")
    assert blas.blas_threads() == before


def test_overlapping_single_threaded_blocks_restore_the_count_once():
    """Two Python threads in overlapping blocks: the count is 1 while either is inside and the
    original count comes back after the last one leaves (not 1, as a naive save/restore gives)."""
    import threading

    before = blas.blas_threads()
    inside, leave = threading.Event(), threading.Event()

    def other():
        with blas.single_threaded():
            inside.set()
            leave.wait(5)

    t = threading.Thread(target=other)
    with blas.single_threaded():
        t.start()
        inside.wait(5)
    assert blas.blas_threads() == 1  # the other thread is still inside
    leave.set()
    t.join(5)
    assert blas.blas_threads() == before


def test_small_products_run_on_one_thread(monkeypatch):
    """Below SMALL_PRODUCT multiply-adds OpenBLAS runs single-threaded (its worker would spin for
    100+ ms afterwards); larger products keep the caller's thread count. The CPU Dense ops use
    it, so a batch-256 Dense inside them sees one thread."""
    from edgemine.kernels import cpu

    before = blas.blas_threads()
    blas.set_blas_threads(2)
    try:
        with blas.for_product(256, 64, 64):
            assert blas.blas_threads() == 1
        with blas.for_product(64, 64, 64):  # OpenBLAS keeps it on one thread by itself
            assert blas.blas_threads() == 2
        with blas.for_product(1024, 1024, 64):
            assert blas.blas_threads() == 2
        seen = []
        real = blas.for_product

        def spy(m, n, k):
            seen.append((m, n, k))
            return real(m, n, k)

        monkeypatch.setattr(blas, "for_product", spy)
        x = np.ones((4, 256, 6), np.float32)
        k = np.ones((6, 5), np.float32)
        cpu.dense_forward(x, k, None)
        cpu.dense_backward(x, k, np.ones((4, 256, 5), np.float32))
        assert seen == [(1024, 5, 6), (1024, 6, 5)]
    finally:
        blas.set_blas_threads(before)


def test_parallel_kernels_use_the_workqueue_layer():
    """edgemine picks numba's workqueue threading layer (OpenMP's spinning workers made the
    next BLAS call 6.5x slower) without importing numba itself, whether numba comes first or
    later; a user's NUMBA_THREADING_LAYER is kept."""
    import os
    import subprocess
    import sys

    code = (
        "import {first}, {second}, numpy as np\n"
        "@numba.njit(parallel=True)\n"
        "def double(x):\n"
        "    for i in numba.prange(x.size):\n"
        "        x[i] *= 2\n"
        "double(np.ones(8))\n"
        "print(numba.threading_layer())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    for first, second in (("edgemine", "numba"), ("numba", "edgemine")):
        src = code.format(first=first, second=second)
        res = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "workqueue", (first, res.stdout)
    res = subprocess.run(
        [sys.executable, "-c", code.format(first="edgemine", second="numba")],
        capture_output=True,
        text=True,
        env={**env, "NUMBA_THREADING_LAYER": "omp"},
    )
    if "No threading layer could be loaded" in res.stderr:
        pytest.skip("numba's OpenMP layer is not available here")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "omp"


def test_parallel_twins_of_the_loop_kernels_agree_with_the_serial_ones(monkeypatch):
    """Every loop kernel has a serial and a parallel (prange) build, chosen by the work's size
    (``SERIAL_BELOW``); batches big enough for the parallel one are rare in tests, so run a
    small CNN's training step through each and compare."""
    from edgemine.kernels.cpu import _jit
    from edgemine.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from edgemine.models import Sequential
    from edgemine.utils import set_random_seed

    rng = np.random.default_rng(0)
    x = rng.random((4, 9, 9, 2), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 4)]
    results = []
    monkeypatch.setattr(_jit, "parallel_ok", True)  # as on 3 or more threads
    for threshold in (1 << 40, 0):  # all serial, then all parallel
        monkeypatch.setattr(_jit, "SERIAL_BELOW", threshold)
        set_random_seed(0)
        model = Sequential(
            [
                Conv2D(3, 3, activation="relu", input_shape=(9, 9, 2)),
                MaxPooling2D(),
                Conv2D(4, 2, padding="same", activation="tanh"),
                MaxPooling2D(pool_size=3, strides=1, padding="same"),
                Flatten(),
                Dense(3, activation="softmax"),
            ]
        )
        model.compile("adam", "categorical_crossentropy")
        model.train_on_batch(x, y)
        results.append((model.predict(x, verbose=0), model.get_weights()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-6, atol=1e-7)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_parallel_builds_run_from_three_numba_threads(monkeypatch):
    """On two threads the loop kernels run serially (OpenBLAS's spinning worker takes the
    second core's gain); the thread count that ``limit_threads`` and the thread policy set
    decides it."""
    import numba

    from edgemine.kernels.cpu import _jit, threads

    calls = []
    monkeypatch.setattr(_jit.DualKernel, "__init__", lambda self: None)
    kernel = _jit.DualKernel()
    kernel.serial = lambda: calls.append("serial")
    kernel.parallel = lambda: calls.append("parallel")
    before = numba.get_num_threads()
    try:
        monkeypatch.setattr(_jit, "PARALLEL_MIN_THREADS", 2)
        threads.set_numba_threads(1)
        assert not _jit.parallel_ok
        kernel(1 << 40)
        if numba.config.NUMBA_NUM_THREADS >= 2:
            threads.set_numba_threads(2)
            assert _jit.parallel_ok
            kernel(1 << 40)
            kernel(_jit.SERIAL_BELOW - 1)
            assert calls == ["serial", "parallel", "serial"]
    finally:
        threads.set_numba_threads(before)
