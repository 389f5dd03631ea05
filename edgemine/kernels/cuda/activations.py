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
    view,
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


@cuda.jit(cache=True)
def _bias_act_fwd(x, bias, y, code):
    n = bias.size
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        y[i] = act(x[i] + bias[i % n], code)


def bias_activation(x: DeviceArray, bias: DeviceArray | None, activation: str) -> DeviceArray:
    """activation(x + bias) over the last axis, a new device array (as the CPU op's result)."""
    code = ACT_CODES.get(activation)
    if code is None:
        raise ValueError(f"bias_activation: unknown or non-element-wise activation {activation!r}")
    if bias is None:
        return activation_forward(activation, x)
    y = empty(x.shape, x.dtype)
    if x.size:
        _bias_act_fwd[grid1d(x.size)](flat(x), bias, flat(y), code)
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


@cuda.jit(cache=True)
def _relu_family(x, y, slope, max_value, threshold):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if v > threshold:
            y[i] = v if v < max_value else max_value
        elif v <= threshold:
            y[i] = slope * (v - threshold)
        else:
            y[i] = v  # NaN stays NaN


@cuda.jit(cache=True)
def _relu_family_grad(x, dy, dx, slope, max_value, threshold):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        v = x[i]
        if v > threshold:
            dx[i] = dy[i] if v < max_value else float32(0.0)
        else:
            dx[i] = dy[i] * slope


def _relu_scalars(negative_slope: float, max_value: float | None, threshold: float) -> tuple:
    top = math.inf if max_value is None else max_value
    return float32(negative_slope), float32(top), float32(threshold)


def relu_forward(
    x: DeviceArray,
    negative_slope: float = 0.0,
    max_value: float | None = None,
    threshold: float = 0.0,
) -> DeviceArray:
    """Keras's ``relu(x, negative_slope, max_value, threshold)``, a new device array."""
    y = empty(x.shape, x.dtype)
    if x.size:
        scalars = _relu_scalars(negative_slope, max_value, threshold)
        _relu_family[grid1d(x.size)](flat(x), flat(y), *scalars)
    return y


def relu_backward(
    x: DeviceArray,
    dy: DeviceArray,
    negative_slope: float = 0.0,
    max_value: float | None = None,
    threshold: float = 0.0,
) -> DeviceArray:
    """dL/dx of :func:`relu_forward` from its input x."""
    dx = empty(dy.shape, dy.dtype)
    if dy.size:
        scalars = _relu_scalars(negative_slope, max_value, threshold)
        _relu_family_grad[grid1d(dy.size)](flat(x), flat(dy), flat(dx), *scalars)
    return dx


@cuda.jit(cache=True)
def _softmax_mid(x, y):
    # x viewed as (outer, n, inner): softmax over the middle axis, one thread per (outer, inner)
    outer, n, inner = x.shape
    for idx in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
        o = idx // inner
        k = idx - o * inner
        mx = x[o, 0, k]
        for j in range(1, n):
            mx = max(mx, x[o, j, k])
        s = float32(0.0)
        for j in range(n):
            s += math.exp(x[o, j, k] - mx)
        for j in range(n):
            y[o, j, k] = math.exp(x[o, j, k] - mx) / s


@cuda.jit(cache=True)
def _softmax_mid_bwd(y, dy, dx):
    outer, n, inner = y.shape
    for idx in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
        o = idx // inner
        k = idx - o * inner
        s = float32(0.0)
        for j in range(n):
            s += dy[o, j, k] * y[o, j, k]
        for j in range(n):
            dx[o, j, k] = y[o, j, k] * (dy[o, j, k] - s)


def _around(shape: tuple, axes: tuple) -> tuple[int, int, int]:
    """(outer, n, inner): the sizes before, over and after the contiguous ``axes``."""
    lo, hi = min(axes), max(axes) + 1
    return math.prod(shape[:lo]), math.prod(shape[lo:hi]), math.prod(shape[hi:])


def softmax_forward(x: DeviceArray, axes: tuple) -> DeviceArray:
    """Softmax over ``axes`` (contiguous axes of x, batch axis excluded), a new device array."""
    y = empty(x.shape, x.dtype)
    if x.size:
        outer, n, inner = _around(tuple(x.shape), axes)
        _softmax_mid[grid1d(outer * inner)](view(x, outer, n, inner), view(y, outer, n, inner))
    return y


def softmax_backward(y: DeviceArray, dy: DeviceArray, axes: tuple) -> DeviceArray:
    """dL/dx of :func:`softmax_forward` from its output y."""
    dx = empty(dy.shape, dy.dtype)
    if dy.size:
        outer, n, inner = _around(tuple(y.shape), axes)
        shape = (outer, n, inner)
        _softmax_mid_bwd[grid1d(outer * inner)](view(y, *shape), view(dy, *shape), view(dx, *shape))
    return dx
