"""What every CUDA kernel module shares: the ``numba.cuda`` import, launch sizes, allocation,
a per-op workspace cache and a few element-wise kernels.

Launch sizes depend on whether Numba's CUDA simulator runs (``NUMBA_ENABLE_CUDASIM=1``): the
simulator starts one Python thread per CUDA thread, so there every kernel gets a handful of
threads and walks its work in grid-stride loops. The kernels are the same code either way; only
the block sizes and the GEMM tile constants differ.
"""

from __future__ import annotations

import math

import numpy as np
from numba import config, cuda, float32

SIM: bool = bool(config.ENABLE_CUDASIM)

#: threads per block of 1-D kernels
TPB = 32 if SIM else 256
#: most blocks of a 1-D grid-stride kernel
MAX_BLOCKS = 2 if SIM else 8192

ACT_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def is_device(x) -> bool:
    """True for a numba device array (real or simulated)."""
    return hasattr(x, "copy_to_host")


def sm_count() -> int:
    """Multiprocessors of the current GPU (a small constant under the simulator)."""
    if SIM:
        return 2
    return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)


def empty(shape, dtype=np.float32):
    """An uninitialised device array."""
    return cuda.device_array(tuple(int(d) for d in shape), dtype=np.dtype(dtype))


def grid1d(n: int) -> tuple[int, int]:
    """(blocks, threads) for a 1-D grid-stride loop over n items."""
    return max(1, min(math.ceil(n / TPB), MAX_BLOCKS)), TPB


def flat(a):
    """A 1-D view of a contiguous device array."""
    return a.reshape(a.size)


def as2d(a):
    """A (rows, last axis) view of a contiguous device array."""
    return a.reshape(a.size // a.shape[-1], a.shape[-1]) if a.ndim != 1 else a.reshape(1, a.size)


_DUMMY: dict = {}


def dummy(dtype=np.float32):
    """A 1-element device array passed where a kernel's optional input is absent."""
    key = np.dtype(dtype).str
    arr = _DUMMY.get(key)
    if arr is None:
        arr = _DUMMY[key] = cuda.to_device(np.zeros(1, dtype=dtype))
    return arr


_WORKSPACE: dict = {}


def workspace(name: str, shape, dtype=np.float32):
    """A scratch device array reused across calls (kernels run in order on one stream, so an
    op may reuse its own scratch on the next call). Never return one to a caller."""
    shape = tuple(int(d) for d in shape)
    key = (name, np.dtype(dtype).str)
    arr = _WORKSPACE.get(key)
    need = max(1, math.prod(shape))
    if arr is None or arr.size < need:
        arr = _WORKSPACE[key] = cuda.device_array(need, dtype=np.dtype(dtype))
    return arr[:need].reshape(shape) if shape else arr[:1]


# ----- device functions -----
@cuda.jit(device=True)
def act(v, code):
    """Activation ``code`` (ACT_CODES) of a float32 value."""
    if code == 1:
        return v if v > float32(0.0) else float32(0.0)
    if code == 2:
        if v >= float32(0.0):
            return float32(1.0) / (float32(1.0) + math.exp(-v))
        e = math.exp(v)
        return e / (float32(1.0) + e)
    if code == 3:
        return math.tanh(v)
    return v


@cuda.jit(device=True)
def act_grad(y, g, code):
    """dL/dz from the activation's output y and dL/dy = g."""
    if code == 1:
        return g if y > float32(0.0) else float32(0.0)
    if code == 2:
        return g * y * (float32(1.0) - y)
    if code == 3:
        return g * (float32(1.0) - y * y)
    return g


@cuda.jit(device=True)
def sigmoid(v):
    """The logistic function, split by sign so that exp never overflows."""
    if v >= float32(0.0):
        return float32(1.0) / (float32(1.0) + math.exp(-v))
    e = math.exp(v)
    return e / (float32(1.0) + e)


# ----- element-wise kernels -----
@cuda.jit(cache=True)
def _fill(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


@cuda.jit(cache=True)
def _mul(a, b, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = a[i] * b[i]


def zeros(shape, dtype=np.float32):
    """A zero-filled device array (filled by a kernel, no host copy)."""
    out = empty(shape, dtype)
    if out.size:
        _fill[grid1d(out.size)](flat(out), out.dtype.type(0))
    return out


def fill(out, value) -> None:
    """out[...] = value, in place."""
    if out.size:
        _fill[grid1d(out.size)](flat(out), out.dtype.type(value))


def multiply(a, b):
    """a * b element-wise (same shapes, float32)."""
    out = empty(a.shape, a.dtype)
    if out.size:
        _mul[grid1d(out.size)](flat(a), flat(b), flat(out))
    return out
