"""Make Numba's CUDA simulator refuse what a real GPU refuses (for tests and smoke runs).

The simulator's device arrays wrap numpy arrays and quietly allow what real device arrays do not:
arithmetic (``a * b``), ``np.asarray(devarray)``, every numpy method through attribute lookup,
and shapes that refuse negative indices (real ones are plain tuples). Host numpy arrays passed to
a kernel are copied silently (on a GPU: a slow implicit transfer per launch). After
:func:`make_strict`, each of these raises, so a simulator run catches code that would break or
crawl on a GPU.
"""

from __future__ import annotations

import numpy as np

#: attributes a real numba DeviceNDArray has (besides its methods listed below)
_ALLOWED = {
    "dtype", "ndim", "size", "strides", "nbytes", "itemsize", "flags", "alloc_size", "stream",
    "__cuda_array_interface__", "_ary", "_numba_type_",
    "squeeze",  # a DeviceNDArray method; the simulator's copy_to_device calls it
}  # fmt: skip
_REFUSED_DUNDERS = (
    "__add__", "__sub__", "__mul__", "__truediv__", "__floordiv__", "__mod__", "__pow__",
    "__radd__", "__rsub__", "__rmul__", "__rtruediv__", "__neg__", "__array__", "__lt__",
    "__le__", "__gt__", "__ge__", "__iadd__", "__imul__", "__isub__", "__itruediv__",
)  # fmt: skip


def make_strict() -> None:
    """Patch the simulator (only when ``NUMBA_ENABLE_CUDASIM=1``; a no-op otherwise)."""
    from numba import config

    if not config.ENABLE_CUDASIM:
        return
    from numba.cuda.simulator import kernel as sim_kernel
    from numba.cuda.simulator.cudadrv import devicearray as sim_da

    fake = sim_da.FakeCUDAArray
    if getattr(fake, "_edgemine_strict", False):
        return

    def refuse(self, *args, **kwargs):
        raise TypeError(
            "arithmetic or numpy conversion on a device array (only the simulator allows it; "
            "use a backend op)"
        )

    for dunder in _REFUSED_DUNDERS:
        setattr(fake, dunder, refuse)
    fake.__array_interface__ = property(refuse)
    fake.shape = property(lambda self: tuple(self._ary.shape))

    def getattr_strict(self, name):
        if name in _ALLOWED:
            return getattr(self._ary, name)
        raise AttributeError(f"a device array has no attribute {name!r} (only the simulator's has)")

    fake.__getattr__ = getattr_strict
    original = sim_kernel.FakeCUDAKernel.__call__

    def call(self, *args):
        if not self._device:
            for a in args:
                if isinstance(a, np.ndarray) and a.ndim > 0:
                    raise TypeError(
                        "a host numpy array was passed to a CUDA kernel (an implicit copy per "
                        "launch on a GPU)"
                    )
        return original(self, *args)

    sim_kernel.FakeCUDAKernel.__call__ = call
    fake._edgemine_strict = True
