"""What every CUDA kernel module shares: the ``numba.cuda`` import, launch sizes, allocation
(the per-batch memory arena, a per-op workspace cache, uploads) and a few element-wise kernels.

Launch sizes depend on whether Numba's CUDA simulator runs (``NUMBA_ENABLE_CUDASIM=1``): the
simulator starts one Python thread per CUDA thread, so there every kernel gets a handful of
threads and walks its work in grid-stride loops. The kernels are the same code either way; only
the block sizes and the GEMM tile constants differ.
"""

from __future__ import annotations

import importlib
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from numba import config, cuda, float32
from numpy.typing import DTypeLike

SIM: bool = bool(config.ENABLE_CUDASIM)


def _tune_numba() -> None:
    """Two settings of Numba's CUDA target, unless the user set them (NUMBA_... variables):
    no low-occupancy warnings (small grids are deliberate here: tiny layers, one block per
    sequence), and freeing device memory in batches of 1024 instead of 10 (each flush calls
    cuMemFree, which waits for the GPU; a training step frees dozens of temporaries)."""
    settings = {
        "CUDA_LOW_OCCUPANCY_WARNINGS": ("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", 0),
        "CUDA_DEALLOCS_COUNT": ("NUMBA_CUDA_DEALLOCS_COUNT", 1024),
    }
    for module in ("numba.core.config", "numba.cuda.core.config"):  # built-in / numba-cuda
        try:
            cfg = importlib.import_module(module)
        except ImportError:
            continue
        for attr, (env, value) in settings.items():
            if hasattr(cfg, attr) and env not in os.environ:
                setattr(cfg, attr, value)


_tune_numba()

#: threads per block of 1-D kernels
TPB = 4 if SIM else 256
#: most blocks of a 1-D grid-stride kernel
MAX_BLOCKS = 2 if SIM else 8192

#: a numba.cuda device array (a DeviceNDArray, or the simulator's FakeCUDAArray)
DeviceArray = Any

ACT_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def is_device(x: Any) -> bool:
    """True for a numba device array (real or simulated)."""
    return hasattr(x, "copy_to_host")


def sm_count() -> int:
    """Multiprocessors of the current GPU (a small constant under the simulator)."""
    if SIM:
        return 2
    return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)


def empty(shape: tuple, dtype: DTypeLike = np.float32) -> DeviceArray:
    """An uninitialised device array: inside :func:`batch_memory`, one from the batch arena."""
    shape = tuple(int(d) for d in shape)
    dtype = np.dtype(dtype)
    arena = _arena()
    if arena.active:
        return arena.take(shape, dtype)
    return cuda.device_array(shape, dtype=dtype)


def upload(host: np.ndarray) -> DeviceArray:
    """A device copy of a host array: inside :func:`batch_memory`, into an arena array."""
    host = np.ascontiguousarray(host)
    arena = _arena()
    if not arena.active:
        return cuda.to_device(host)
    out = arena.take(tuple(host.shape), host.dtype)
    if host.size:
        out.copy_to_device(host)
    arena.uploaded[id(out)] = (out, host)
    return out


def uploaded_host(a: DeviceArray) -> np.ndarray:
    """The host array that ``a`` was uploaded from in this batch (no download), else a download.
    Only for inputs, which no kernel writes (an Embedding's ids)."""
    hit = _arena().uploaded.get(id(a))
    if hit is not None and hit[0] is a:
        return hit[1]
    return a.copy_to_host()


# ----- the batch arena -----
class _Arena:
    """The device arrays that one batch (a training step, or one batch of evaluate / predict)
    asks for, handed out again, in the same order, to the next batch.

    Batches of one model ask for the same shapes in the same order, so from the second batch on
    a training step allocates nothing: no ``cuMemAlloc``, no deferred ``cuMemFree`` (which waits
    for the GPU), no new array objects; this is what PyTorch's caching allocator achieves. The
    contract: nothing taken during a batch is read after it ends. Weights, optimizer slots and
    other state that outlives the batch are allocated under :func:`lasting_memory`.
    ``EDGEMINE_CUDA_POISON=1`` (set by the tests) fills every array with NaN (or -1, or True)
    when its batch ends, so that a broken contract shows as a wrong result."""

    def __init__(self) -> None:
        self.active = False
        self.depth = 0
        self.arrays: dict[tuple, list] = {}  # (shape, dtype) -> arrays, in the order taken
        self.taken: dict[tuple, int] = {}  # (shape, dtype) -> how many this batch took
        self.uploaded: dict[int, tuple] = {}  # id -> (device array, its host source) this batch

    def take(self, shape: tuple, dtype: np.dtype) -> DeviceArray:
        key = (shape, dtype.str)
        i = self.taken.get(key, 0)
        self.taken[key] = i + 1
        arrays = self.arrays.setdefault(key, [])
        if i == len(arrays):
            arrays.append(cuda.device_array(shape, dtype=dtype))
        return arrays[i]

    def end_batch(self) -> None:
        """Keep what this batch took (the next one will most likely take the same)."""
        for key in list(self.arrays):
            n = self.taken.get(key, 0)
            if n:
                del self.arrays[key][n:]
            else:
                del self.arrays[key]
        self.taken.clear()
        self.uploaded.clear()
        if os.environ.get("EDGEMINE_CUDA_POISON") == "1":
            for arrays in self.arrays.values():
                for a in arrays:
                    fill(a, _POISON.get(a.dtype.kind, -1))


_POISON = {"f": np.nan, "b": True, "u": 255}  # by dtype kind; signed integers get -1
_LOCAL = threading.local()  # one arena per thread: a batch's arrays belong to its thread


def _arena() -> _Arena:
    arena = getattr(_LOCAL, "arena", None)
    if arena is None:
        arena = _LOCAL.arena = _Arena()
    return arena


@contextmanager
def batch_memory() -> Iterator[None]:
    """Device temporaries of the batch inside come from the arena (see ``_Arena``) and are
    handed out again to the next batch. Nested uses belong to the outermost."""
    arena = _arena()
    if arena.depth:
        yield
        return
    arena.depth, arena.active = 1, True
    try:
        yield
    finally:
        arena.depth, arena.active = 0, False
        arena.end_batch()


@contextmanager
def lasting_memory() -> Iterator[None]:
    """Allocations inside outlive the batch (optimizer slots, packed weights): the arena is
    paused."""
    arena = _arena()
    was, arena.active = arena.active, False
    try:
        yield
    finally:
        arena.active = was


def grid1d(n: int) -> tuple[int, int]:
    """(blocks, threads) for a 1-D grid-stride loop over n items."""
    return max(1, min(math.ceil(n / TPB), MAX_BLOCKS)), TPB


_MAX_VIEWS = 64  # cached views per array (workspaces serve many shapes; Embedding rows vary)


def _cached(a: DeviceArray, key: tuple, make) -> DeviceArray:
    views = a.__dict__.get("_edgemine_views")
    if views is None:
        views = a.__dict__["_edgemine_views"] = {}
    v = views.get(key)
    if v is None:
        if len(views) >= _MAX_VIEWS:
            views.clear()
        v = views[key] = make()
    return v


def view(a: DeviceArray, *shape: int) -> DeviceArray:
    """``a.reshape(shape)`` of a contiguous device array, made once per array and shape.

    Numba builds a new array object for every reshape or slice (about 9 microseconds of host
    time each), while the batch arena and the workspaces hand out the same arrays every batch:
    their views are kept with them (in the array object, so they go when it goes)."""
    if shape == a.shape:
        return a
    return _cached(a, shape, lambda: a.reshape(shape))


def part(a: DeviceArray, start: int, stop: int) -> DeviceArray:
    """``a[start:stop]`` (first axis), made once per array and bounds (as :func:`view`)."""
    return _cached(a, ("part", start, stop), lambda: a[start:stop])


def flat(a: DeviceArray) -> DeviceArray:
    """A 1-D view of a contiguous device array."""
    return view(a, a.size)


def last(a: DeviceArray) -> int:
    """The length of the last axis (the simulator's shapes refuse negative indices)."""
    return int(tuple(a.shape)[-1])


def as2d(a: DeviceArray) -> DeviceArray:
    """A (rows, last axis) view of a contiguous device array."""
    return view(a, a.size // last(a), last(a)) if a.ndim != 1 else view(a, 1, a.size)


_DUMMY: dict = {}


def dummy(dtype: DTypeLike = np.float32) -> DeviceArray:
    """A 1-element device array passed where a kernel's optional input is absent."""
    key = np.dtype(dtype).str
    arr = _DUMMY.get(key)
    if arr is None:
        arr = _DUMMY[key] = cuda.to_device(np.zeros(1, dtype=dtype))
    return arr


_WORKSPACE: dict = {}


def workspace(name: str, shape: tuple, dtype: DTypeLike = np.float32) -> DeviceArray:
    """A scratch device array reused across calls (kernels run in order on one stream, so an
    op may reuse its own scratch on the next call). Never return one to a caller."""
    shape = tuple(int(d) for d in shape)
    key = (name, np.dtype(dtype).str)
    arr = _WORKSPACE.get(key)
    need = max(1, math.prod(shape))
    if arr is None or arr.size < need:
        arr = _WORKSPACE[key] = cuda.device_array(need, dtype=np.dtype(dtype))
    return view(part(arr, 0, need), *shape) if shape else part(arr, 0, 1)


# ----- device functions -----
@cuda.jit(device=True)
def nhwc_index(idx, h, w, c):
    """(b, row, col, ch) of the flat index ``idx`` into an (n, h, w, c) array: the kernels run
    one thread per element over a grid-stride loop."""
    ch = idx % c
    t = idx // c
    col = t % w
    t = t // w
    return t // h, t % h, col, ch


@cuda.jit(device=True)
def covering_windows(pos, pad, k, stride, out):
    """(first, last) output positions whose window (size k, stride, leading pad) covers input
    position ``pos`` along one axis; empty when last < first."""
    num = pos + pad - k
    first = 0 if num < 0 else num // stride + 1
    return first, min(out - 1, (pos + pad) // stride)


@cuda.jit(device=True)
def row_max_and_expsum(z, r, cols):
    """(max, sum of exp(z - max)) over row r: the two reductions of a stable softmax."""
    mx = z[r, 0]
    for c in range(1, cols):
        mx = max(mx, z[r, c])
    s = float32(0.0)
    for c in range(cols):
        s += math.exp(z[r, c] - mx)
    return mx, s


@cuda.jit(device=True)
def act(v, code):
    """Activation ``code`` (ACT_CODES) of a float32 value."""
    if code == 1:
        return v if not v <= float32(0.0) else float32(0.0)  # NaN stays NaN
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


# ----- element-wise kernels -----
@cuda.jit(cache=True)
def _fill(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


@cuda.jit(cache=True)
def _mul(a, b, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = a[i] * b[i]


@cuda.jit(cache=True)
def _add(a, b, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = a[i] + b[i]


def zeros(shape: tuple, dtype: DTypeLike = np.float32) -> DeviceArray:
    """A zero-filled device array (filled by a kernel, no host copy)."""
    out = empty(shape, dtype)
    if out.size:
        _fill[grid1d(out.size)](flat(out), out.dtype.type(0))
    return out


def fill(out: DeviceArray, value: float) -> None:
    """out[...] = value, in place."""
    if out.size:
        _fill[grid1d(out.size)](flat(out), out.dtype.type(value))


def add(a: DeviceArray, b: DeviceArray) -> DeviceArray:
    """a + b element-wise (same shapes, float32), a new array."""
    out = empty(a.shape, a.dtype)
    if out.size:
        _add[grid1d(out.size)](flat(a), flat(b), flat(out))
    return out


def multiply(a: DeviceArray, b: DeviceArray) -> DeviceArray:
    """a * b element-wise (same shapes, float32)."""
    out = empty(a.shape, a.dtype)
    if out.size:
        _mul[grid1d(out.size)](flat(a), flat(b), flat(out))
    return out
