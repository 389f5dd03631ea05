"""OpenBLAS's sgemm, callable from inside jitted kernels, and control of its thread count.

numpy ships OpenBLAS; numba reaches BLAS only through SciPy (shared/notes/numba-performance.md).
A recurrent layer needs one small matrix product per time step (32 x 64 x 256 for the seed
LSTM), and calling numpy's matmul from Python between jitted step functions costs more in call
overhead than the product itself. So the address of numpy's own ``cblas_sgemm`` is looked up
once, passed to the kernels as an integer (the compiled kernels stay cacheable: the address is
an argument, not a constant) and called through the intrinsic ``sgemm``.

Where the library or the symbol is not found (a numpy built against another BLAS), ``SGEMM`` is
0 and callers use their own loops: nothing here is required for correctness.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

#: (cblas_sgemm symbol, set_num_threads symbol, get_num_threads symbol, 64-bit ints?)
_SYMBOLS = (
    ("scipy_cblas_sgemm64_", "scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_", True),
    ("scipy_cblas_sgemm", "scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads", False),
    ("cblas_sgemm64_", "openblas_set_num_threads64_", "openblas_get_num_threads64_", True),
    ("cblas_sgemm", "openblas_set_num_threads", "openblas_get_num_threads", False),
)  # fmt: skip


def _candidate_libraries() -> list[str]:
    root = os.path.dirname(np.__file__)
    found = sorted(glob.glob(os.path.join(root, "..", "numpy.libs", "*openblas*")))  # Linux wheels
    found += sorted(glob.glob(os.path.join(root, ".dylibs", "*openblas*")))  # macOS wheels
    try:
        with open("/proc/self/maps") as maps:  # a numpy linked against a system OpenBLAS
            found += sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        pass
    return found


def _find():
    for path in _candidate_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for gemm, set_n, get_n, int64 in _SYMBOLS:
            if hasattr(lib, gemm) and int64:  # the intrinsic below passes 64-bit sizes
                addr = ctypes.cast(getattr(lib, gemm), ctypes.c_void_p).value
                return addr, getattr(lib, set_n, None), getattr(lib, get_n, None)
    return 0, None, None


SGEMM, _set_threads, _get_threads = _find()

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


@intrinsic
def sgemm(typingctx, addr, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """c = alpha * op(a) @ op(b) + beta * c, row-major, through the cblas_sgemm at ``addr``
    (ILP64: sizes are int64). a, b, c are arrays (their data pointers are passed)."""
    sig = types.void(
        types.int64,
        types.int32,
        types.int32,
        types.int64,
        types.int64,
        types.int64,
        types.float32,
        a,
        types.int64,
        b,
        types.int64,
        types.float32,
        c,
        types.int64,
    )

    def codegen(context, builder, signature, args):
        i32, i64, f32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
        ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(
            ir.VoidType(), [i32, i32, i32, i64, i64, i64, f32, ptr, i64, ptr, i64, f32, ptr, i64]
        )
        fn = builder.inttoptr(args[0], fnty.as_pointer())

        def data(index):
            arr = context.make_array(signature.args[index])(context, builder, args[index])
            return builder.bitcast(arr.data, ptr)

        builder.call(
            fn,
            [
                ir.Constant(i32, ROW_MAJOR),
                *args[1:7],
                data(7),
                args[8],
                data(9),
                args[10],
                args[11],
                data(12),
                args[13],
            ],
        )
        return context.get_dummy_value()

    return sig, codegen


def blas_threads() -> int | None:
    """OpenBLAS's current thread count (None where unknown)."""
    return int(_get_threads()) if _get_threads is not None else None


def set_blas_threads(n: int) -> None:
    """Set OpenBLAS's thread count (no-op where unknown)."""
    if _set_threads is not None:
        _set_threads(int(n))


#: products with fewer multiply-adds than this run on one thread (see ``for_product``)
SMALL_PRODUCT = 1 << 22
#: OpenBLAS runs products of up to this many multiply-adds on the calling thread by itself
#: (its SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD; measured: its workers got no CPU time
#: over 20,000 such products on 2 threads)
OPENBLAS_SERIAL_PRODUCT = 65536 * 4
_NO_CONTEXT = contextlib.nullcontext()


def for_product(m: int, n: int, k: int):
    """A context for one (m x k) @ (k x n) product: OpenBLAS single-threaded when it is small.

    Splitting a small product over threads saves microseconds, but afterwards OpenBLAS's worker
    busy-waits for over 100 ms, and it took a core from the next layer's own threads: a Dense
    after an LSTM at batch 256 slowed the next batch's recurrent layers by half. Products that
    OpenBLAS keeps on one thread anyway skip the switch (two library calls and a lock, about
    4 us: a tenth of a small model's batch-1 latency)."""
    work = m * n * k
    if OPENBLAS_SERIAL_PRODUCT < work < SMALL_PRODUCT:
        return single_threaded()
    return _NO_CONTEXT


_single_lock = threading.Lock()
_single_depth = 0  # blocks inside single_threaded(), over all Python threads
_single_saved: int | None = None  # the count to restore when the last block leaves


def inside_single_threaded() -> bool:
    """Is some thread inside a ``single_threaded()`` block (which restores the count later)?"""
    return _single_depth > 0


class single_threaded:  # noqa: N801 (used as a function: ``with single_threaded():``)
    """OpenBLAS on the calling thread only, for a block whose own threads each call BLAS.

    Besides oversubscription this avoids OpenBLAS's worker spinning: after a multi-threaded call
    it busy-waits for over 100 ms and takes a core from our second thread (measured 1.6x slower
    recurrent chunks). The setting is process-wide, so overlapping blocks (several Python
    threads predicting at once) share it: the first sets 1, the last restores the count. A
    class rather than a generator: it runs around most products of a small model's batch."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _single_depth, _single_saved
        if _get_threads is None:
            return
        with _single_lock:
            if _single_depth == 0:
                _single_saved = blas_threads()
                if _single_saved != 1:
                    set_blas_threads(1)
            _single_depth += 1

    def __exit__(self, *exc) -> None:
        global _single_depth
        if _get_threads is None:
            return
        with _single_lock:
            _single_depth -= 1
            if _single_depth == 0 and _single_saved not in (None, 1):
                set_blas_threads(_single_saved)
