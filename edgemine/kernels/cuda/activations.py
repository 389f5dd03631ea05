"""Element-wise activations and the row-wise softmax on device arrays.

As on the CPU, every backward is written in terms of the forward OUTPUT y. Dense and Conv2D fuse
relu / sigmoid / tanh into their GEMM epilogue; these kernels serve the Activation layer, softmax,
and the backward passes. Softmax runs one thread per row (rows are short here: class scores).
"""

from __future__ import annotations

import math

from numba import cuda, float32

from ._device import (
    ACT_CODES,
    DeviceArray,
    act,
    act_grad,
    as2d,
    empty,
    flat,
    grid1d,
    row_max_and_expsum,
)


@cuda.jit(cache=True)
def _act_fwd(x, y, code):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = act(x[i], code)


@cuda.jit(cache=True)
def _act_bwd(y, dy, dx, code):
    for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        dx[i] = act_grad(y[i], dy[i], code)


@cuda.jit(cache=True)
def _softmax_rows(x, y):
    rows, cols = x.shape
    for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
        mx, s = row_max_and_expsum(x, r, cols)
        for c in range(cols):  # x may be y (in place): each element is read before it is written
            y[r, c] = math.exp(x[r, c] - mx) / s


@cuda.jit(cache=True)
def _softmax_bwd_rows(y, dy, dx):
    rows, cols = y.shape
    for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
        s = float32(0.0)
        for c in range(cols):
            s += dy[r, c] * y[r, c]
        for c in range(cols):
            dx[r, c] = y[r, c] * (dy[r, c] - s)


def softmax_rows_inplace(z: DeviceArray) -> DeviceArray:
    """Row-wise softmax over the last axis, in place; returns z."""
    if z.size:
        z2 = as2d(z)
        _softmax_rows[grid1d(z2.shape[0])](z2, z2)
    return z


def activation_forward(name: str, x: DeviceArray) -> DeviceArray:
    """A new device array activation(x); 'linear' returns x itself (as on the CPU)."""
    if name == "linear":
        return x
    y = empty(x.shape, x.dtype)
    if x.size == 0:
        return y
    if name == "softmax":
        x2 = as2d(x)
        _softmax_rows[grid1d(x2.shape[0])](x2, as2d(y))
        return y
    code = ACT_CODES.get(name)
    if code is None:
        raise ValueError(f"unknown activation {name!r}")
    _act_fwd[grid1d(x.size)](flat(x), flat(y), code)
    return y


def activation_backward(name: str, y: DeviceArray, dy: DeviceArray) -> DeviceArray:
    """dL/dx from the forward output y and dL/dy."""
    if name == "linear":
        return dy
    dx = empty(dy.shape, dy.dtype)
    if dy.size == 0:
        return dx
    if name == "softmax":
        y2 = as2d(y)
        _softmax_bwd_rows[grid1d(y2.shape[0])](y2, as2d(dy), as2d(dx))
        return dx
    code = ACT_CODES.get(name)
    if code is None:
        raise ValueError(f"unknown activation {name!r}")
    _act_bwd[grid1d(dy.size)](flat(y), flat(dy), flat(dx), code)
    return dx
