"""RepeatVector and SpatialDropout1D on device arrays.

The channel mask of SpatialDropout1D is drawn on the host from edgemine's generator (the same
draws as the CPU backend, so a seeded run matches) and uploaded already scaled; one kernel
applies it, forward and backward alike. RepeatVector's backward sums the repeats in a fixed
order (one thread per output value), so results are reproducible run to run.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32

from ._device import DeviceArray, empty, grid1d, upload


@cuda.jit(cache=True)
def _repeat(x, y):
    batch, n, f = y.shape
    for idx in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        b = idx // (n * f)
        k = idx % f
        y[b, (idx // f) % n, k] = x[b, k]


@cuda.jit(cache=True)
def _repeat_sum(dy, dx):
    batch, n, f = dy.shape
    for idx in range(cuda.grid(1), batch * f, cuda.gridsize(1)):
        b = idx // f
        k = idx - b * f
        s = float32(0.0)
        for t in range(n):
            s += dy[b, t, k]
        dx[b, k] = s


@cuda.jit(cache=True)
def _scale_channels(x, mask, y):
    batch, steps, c = x.shape
    for idx in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        b = idx // (steps * c)
        k = idx % c
        t = (idx // c) % steps
        y[b, t, k] = x[b, t, k] * mask[b, k]


def repeat_vector_forward(x: DeviceArray, n: int) -> DeviceArray:
    """(batch, features) -> (batch, n, features), each sample repeated n times."""
    y = empty((x.shape[0], n, x.shape[1]), x.dtype)
    if y.size:
        _repeat[grid1d(y.size)](x, y)
    return y


def repeat_vector_backward(dy: DeviceArray) -> DeviceArray:
    """dL/dx of :func:`repeat_vector_forward`: the sum over the repeats."""
    dx = empty((dy.shape[0], dy.shape[2]), dy.dtype)
    if dx.size:
        _repeat_sum[grid1d(dx.size)](dy, dx)
    return dx


def _scaled(x: DeviceArray, mask: DeviceArray) -> DeviceArray:
    y = empty(x.shape, x.dtype)
    if x.size:
        _scale_channels[grid1d(x.size)](x, mask, y)
    return y


def spatial_dropout_forward(
    x: DeviceArray, rate: float, rng: np.random.Generator
) -> tuple[DeviceArray, DeviceArray]:
    """Dropout of whole channels of (batch, steps, channels) x. Returns (y, mask) with the
    (batch, channels) mask scaled by 1 / (1 - rate)."""
    keep = rng.random((x.shape[0], x.shape[2]), dtype=np.float32) >= rate
    mask = upload(keep.astype(np.float32) * np.float32(1.0 / (1.0 - rate)))
    return _scaled(x, mask), mask


def spatial_dropout_backward(dy: DeviceArray, mask: DeviceArray) -> DeviceArray:
    """dL/dx of :func:`spatial_dropout_forward`: dy scaled by the same channel mask."""
    return _scaled(dy, mask)
