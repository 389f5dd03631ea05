"""Element-wise activations. Every backward is written in terms of the forward OUTPUT y,
so a layer needs to keep only its output for the backward pass.

relu, sigmoid and tanh run as parallel Numba loops (numpy's temporaries cost more than the math
on these sizes); the bias add of Dense and Conv2D is fused into the same pass.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._shared import gradient_into, gradient_out  # noqa: F401 (re-exported)
from ._jit import dual

ACTIVATION_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


@dual
def _bias_act(z, bias, has_bias, code):
    # Each branch writes its own result: a variable reassigned from a float64 literal would
    # widen the whole loop to float64.
    rows, cols = z.shape
    for r in prange(rows):
        for c in range(cols):
            v = z[r, c] + bias[c] if has_bias else z[r, c]
            if code == 1:
                z[r, c] = v if not v <= 0 else 0  # NaN stays NaN, as in Keras
            elif code == 2:
                z[r, c] = 1 / (1 + np.exp(-v)) if v >= 0 else np.exp(v) / (1 + np.exp(v))
            elif code == 3:
                z[r, c] = np.tanh(v)
            else:
                z[r, c] = v


@dual
def _act_grad(y, dy, out, code):
    rows, cols = y.shape
    for r in prange(rows):
        for c in range(cols):
            g = dy[r, c]
            v = y[r, c]
            if code == 1:
                out[r, c] = g if v > 0 else 0
            elif code == 2:
                out[r, c] = g * v * (1 - v)
            elif code == 3:
                out[r, c] = g * (1 - v * v)
            else:
                out[r, c] = g


def _as2d(a):
    return a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)


def bias_activation_inplace(z, bias, name: str):
    """z = activation(z + bias), in place (z must be C-contiguous); returns z."""
    if name == "softmax":
        if bias is not None:
            z += bias
        return _softmax_inplace(z)
    code = ACTIVATION_CODES.get(name)
    if code is None:
        raise ValueError(f"unknown activation {name!r}")
    if code == 0 and bias is None:
        return z
    has_bias = bias is not None
    _bias_act(z.size, _as2d(z), bias if has_bias else z.reshape(-1)[:1], has_bias, code)
    return z


def bias_activation(x, bias, activation: str):
    """activation(x + bias) over the last axis, in place (x must be C-contiguous); returns x."""
    if activation == "softmax":
        raise ValueError("bias_activation: softmax is not applied per element")
    return bias_activation_inplace(x, bias, activation)


def _softmax_inplace(z):
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def activation_forward(name: str, x: np.ndarray) -> np.ndarray:
    """A new array activation(x)."""
    if name == "linear":
        return x
    return bias_activation_inplace(np.array(x, copy=True, order="C"), None, name)


def activation_backward(name: str, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dL/dx from the forward output y and dL/dy."""
    if name == "linear":
        return dy
    if name == "softmax":
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    code = ACTIVATION_CODES.get(name)
    if code is None:
        raise ValueError(f"unknown activation {name!r}")
    y = np.ascontiguousarray(y)
    dy = np.ascontiguousarray(dy)
    out = np.empty_like(dy)
    _act_grad(y.size, _as2d(y), _as2d(dy), _as2d(out), code)
    return out


def column_sums(a2d, out=None):
    """Sum over rows as one BLAS product: numpy's axis-0 sum is several times slower here."""
    return np.matmul(np.ones(a2d.shape[0], dtype=a2d.dtype), a2d, out=out)


@dual
def _relu_family(x, y, slope, max_value, threshold):
    # Keras's relu: min(x, max_value) above the threshold, slope * (x - threshold) at or below it
    for i in prange(x.size):
        v = x[i]
        if v > threshold:
            y[i] = v if v < max_value else max_value
        elif v <= threshold:
            y[i] = slope * (v - threshold)
        else:
            y[i] = v  # NaN stays NaN


@dual
def _relu_family_grad(x, dy, dx, slope, max_value, threshold):
    for i in prange(x.size):
        v = x[i]
        if v > threshold:
            dx[i] = dy[i] if v < max_value else 0
        else:
            dx[i] = dy[i] * slope


def _relu_scalars(x, negative_slope, max_value, threshold) -> tuple:
    t = x.dtype.type  # float32 scalars keep the loop in float32
    top = np.inf if max_value is None else max_value
    return t(negative_slope), t(top), t(threshold)


def relu_forward(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's ``relu(x, negative_slope, max_value, threshold)``, a new array."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    _relu_family(
        x.size,
        x.reshape(-1),
        y.reshape(-1),
        *_relu_scalars(x, negative_slope, max_value, threshold),
    )
    return y


def relu_backward(x, dy, negative_slope=0.0, max_value=None, threshold=0.0):
    """dL/dx of :func:`relu_forward` from its INPUT x (a clipped or thresholded output does not
    tell which branch a value took)."""
    x, dy = np.ascontiguousarray(x), np.ascontiguousarray(dy)
    dx = np.empty_like(dy)
    scalars = _relu_scalars(dy, negative_slope, max_value, threshold)
    _relu_family_grad(x.size, x.reshape(-1), dy.reshape(-1), dx.reshape(-1), *scalars)
    return dx


def softmax_forward(x, axes: tuple):
    """Softmax over ``axes`` (contiguous axes of x, batch axis excluded), a new array."""
    z = x - x.max(axis=axes, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=axes, keepdims=True)
    return z


def softmax_backward(y, dy, axes: tuple):
    """dL/dx of :func:`softmax_forward` from its output y."""
    return y * (dy - (dy * y).sum(axis=axes, keepdims=True))
