"""Compile a loop kernel twice: a parallel version for batches and a serial one for single
samples, where waking the worker threads costs more than the work (batch-1 latency).

Kernels use numpy's error model: Python's model checks every float division for zero and
raises, and that branch alone keeps LLVM from vectorising the loop (measured: Adam's update ran
scalar, 3x slower). A division by zero gives inf or nan, as in numpy."""

from __future__ import annotations

import types

from numba import njit

# Elements of work under which a kernel runs on the calling thread. The kernels are memory-bound
# (copies, element-wise passes), so a second thread gains little, while waking the workers costs
# about 50 us and they compete with OpenBLAS's spinning threads: measured on the seed CNN at
# batch 32, running them all serially made a training step 8-10 % faster than a 65,536 threshold,
# and 2M rather than 1M elements (the second convolution's im2col and col2im, 1.1M, now serial)
# 4 % faster again, batch-256 prediction 8 % (2-core AMD EPYC, alternating blocks: 14 of 20 and
# 10 of 12 faster).
SERIAL_BELOW = 1 << 21
#: Numba threads from which the parallel builds run at all. On two, the one-core gain of a
#: memory-bound kernel is lost to OpenBLAS's worker, which still spins after the product before
#: it (measured on the 2-core AMD EPYC, seed CNN batch-256 prediction: all serial 5-6 % faster,
#: 16 alternating blocks twice). ``threads.set_numba_threads`` keeps ``parallel_ok`` in step.
PARALLEL_MIN_THREADS = 3
parallel_ok = True


class DualKernel:
    def __init__(self, fn, **options):
        serial = types.FunctionType(
            fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__, fn.__closure__
        )
        # a distinct qualname gives the serial twin its own entry in Numba's on-disk cache
        serial.__qualname__ = fn.__qualname__ + "_serial"
        serial.__module__ = fn.__module__
        options = {"error_model": "numpy", **options}
        self.parallel = njit(cache=True, parallel=True, **options)(fn)
        self.serial = njit(cache=True, **options)(serial)
        self.__doc__ = fn.__doc__

    def __call__(self, work: int, *args):
        """Run with ``work`` (a size estimate) deciding serial or parallel."""
        return (self.parallel if parallel_ok and work >= SERIAL_BELOW else self.serial)(*args)


# Lets LLVM reorder and fuse float arithmetic so that reductions vectorise, while keeping the
# NaN and infinity semantics (no 'nnan' / 'ninf'): a NaN must never vanish silently.
VECTORIZE = {"reassoc", "contract", "nsz", "arcp"}


def dual(fn=None, **options):
    """Decorator: ``@dual`` or ``@dual(fastmath=VECTORIZE)``."""
    if fn is None:
        return lambda f: DualKernel(f, **options)
    return DualKernel(fn, **options)
