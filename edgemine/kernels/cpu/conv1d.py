"""1-D convolution (strides, 'valid' / 'same' / 'causal' padding, dilation), its transpose, and
the sequence ops of the 1-D layers, on (batch, steps, channels) arrays.

As Conv2D: an im2col patch matrix and one BLAS product. Patch row (b, i) holds the k taps of
output step i, each tap's channels one contiguous run (column order (tap, channel), the row
order of a Keras kernel (k, cin, filters) reshaped to 2-D). Without dilation the in-bounds taps
of a window are one contiguous run of the input, copied at once. The transposed convolution is
the adjoint: ``col2im(x @ kernel^T)`` forward and ``im2col(dy)`` backward, with the same two
kernels. Products run through ``blas.for_product`` as Dense's: a sensor model's products are
small, and OpenBLAS's threads cost more than they save there (measured: a training step of the
motion_cnn zoo model 5-10x faster on a busy 2-core machine).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._shared import conv1d_geometry, conv1d_transpose_geometry
from . import blas
from ._jit import dual
from .activations import activation_backward, bias_activation_inplace, column_sums, gradient_out


@dual
def _im2col(x, k, stride, dilation, pad, cols):
    # x (n, steps, c); cols (n * out, k * c). Copy loops index from 0 (no wrap-around selects,
    # which would stop vectorisation: see conv.py).
    n, steps, c = x.shape
    out = cols.shape[0] // n
    x2 = x.reshape(n, steps * c)
    for b in prange(n):
        for i in range(out):
            row = cols[b * out + i]
            t0 = i * stride - pad
            if dilation == 1:
                p0 = min(k, max(0, -t0))
                p1 = max(p0, min(k, steps - t0))
                row[: p0 * c] = 0
                src = x2[b, (t0 + p0) * c : (t0 + p1) * c]
                dst = row[p0 * c : p1 * c]
                for e in range(dst.size):
                    dst[e] = src[e]
                row[p1 * c :] = 0
                continue
            for p in range(k):
                t = t0 + p * dilation
                dst = row[p * c : (p + 1) * c]
                if t < 0 or t >= steps:
                    dst[:] = 0
                    continue
                src = x2[b, t * c : (t + 1) * c]
                for e in range(c):
                    dst[e] = src[e]


@dual
def _col2im(cols, k, stride, dilation, pad, dx):
    # the adjoint of _im2col: add each patch row's taps back into dx (n, steps, c)
    n, steps, c = dx.shape
    out = cols.shape[0] // n
    dx2 = dx.reshape(n, steps * c)
    for b in prange(n):
        dx2[b] = 0
        for i in range(out):
            row = cols[b * out + i]
            for p in range(k):
                t = i * stride - pad + p * dilation
                if t < 0 or t >= steps:
                    continue
                dst = dx2[b, t * c : (t + 1) * c]
                src = row[p * c : (p + 1) * c]
                for e in range(c):
                    dst[e] += src[e]


def im2col1d(x, k: int, stride: int, dilation: int, pad: int, out: int):
    """The (n * out, k * c) patch matrix of (n, steps, c) x."""
    n, _, c = x.shape
    cols = np.empty((n * out, k * c), dtype=x.dtype)
    _im2col(cols.size, np.ascontiguousarray(x), k, stride, dilation, pad, cols)
    return cols


def col2im1d(cols, k: int, stride: int, dilation: int, pad: int, shape: tuple):
    """The adjoint of :func:`im2col1d`: an array of ``shape`` (n, steps, c)."""
    dx = np.empty(shape, dtype=cols.dtype)
    _col2im(dx.size, np.ascontiguousarray(cols), k, stride, dilation, pad, dx)
    return dx


def conv1d_forward(x, kernel, bias, stride, padding, dilation=1, activation="linear", keep=True):
    """Returns (activation(conv1d(x) + bias), cache) for x (n, steps, cin) and a Keras kernel
    (k, cin, filters); the cache (the patch matrix) is None unless ``keep``."""
    n, steps, c = x.shape
    k, _, f = kernel.shape
    out, pad, _ = conv1d_geometry(steps, k, stride, dilation, padding)
    if k == 1 and stride == 1:
        cols = np.ascontiguousarray(x).reshape(n * steps, c)
    else:
        cols = im2col1d(x, k, stride, dilation, pad, out)
    with blas.for_product(cols.shape[0], f, k * c):
        y = cols @ kernel.reshape(k * c, f)
    bias_activation_inplace(y, bias, activation)
    return y.reshape(n, out, f), (cols if keep else None)


def conv1d_backward(
    x_shape,
    cache,
    kernel,
    dy,
    stride,
    padding,
    dilation=1,
    need_dx=True,
    activation="linear",
    y=None,
    out=None,
):
    """Returns (dx or None, dkernel, dbias) of conv1d_forward (``cache``: its patch matrix);
    ``activation`` / ``y`` and ``out`` as for conv2d_backward."""
    k, c, f = kernel.shape
    if activation != "linear":
        dy = activation_backward(activation, y, dy)
    _, pad, _ = conv1d_geometry(x_shape[1], k, stride, dilation, padding)
    dy2 = np.ascontiguousarray(dy).reshape(-1, f)
    dkernel = gradient_out(out, 0)
    if dkernel is None:
        dkernel = np.empty(kernel.shape, dy2.dtype)
    with blas.for_product(*cache.shape, f):
        np.matmul(cache.T, dy2, out=dkernel.reshape(-1, f))
        dbias = column_sums(dy2, out=gradient_out(out, 1))
        dcols = dy2 @ kernel.reshape(k * c, f).T if need_dx else None
    dx = None
    if need_dx:
        if k == 1 and stride == 1:
            dx = dcols.reshape(x_shape)
        else:
            dx = col2im1d(dcols, k, stride, dilation, pad, tuple(x_shape))
    return dx, dkernel, dbias


def conv1d_transpose_forward(x, kernel, bias, stride, padding, dilation=1, activation="linear"):
    """Returns (activation(conv1d_transpose(x) + bias), cache) for x (n, steps, cin) and a Keras
    kernel (k, filters, cin); the output length follows Keras's rule
    (``conv1d_transpose_geometry``)."""
    n, steps, c = x.shape
    k, f, _ = kernel.shape
    length, pad = conv1d_transpose_geometry(steps, k, stride, dilation, padding)
    x2 = np.ascontiguousarray(x).reshape(n * steps, c)
    with blas.for_product(n * steps, k * f, c):
        cols = x2 @ kernel.reshape(k * f, c).T
    y = col2im1d(cols, k, stride, dilation, pad, (n, length, f))
    bias_activation_inplace(y.reshape(-1, f), bias, activation)
    return y, x2


def conv1d_transpose_backward(
    cache,
    kernel,
    dy,
    stride,
    padding,
    dilation=1,
    need_dx=True,
    activation="linear",
    y=None,
    out=None,
):
    """Returns (dx or None, dkernel, dbias) of conv1d_transpose_forward (``cache``: its input
    as (n * steps, cin)); ``activation`` / ``y`` and ``out`` as for conv2d_backward."""
    k, f, c = kernel.shape
    if activation != "linear":
        dy = activation_backward(activation, y, dy)
    n = dy.shape[0]
    steps = cache.shape[0] // n
    _, pad = conv1d_transpose_geometry(steps, k, stride, dilation, padding)
    dcols = im2col1d(dy, k, stride, dilation, pad, steps)
    dkernel = gradient_out(out, 0)
    if dkernel is None:
        dkernel = np.empty(kernel.shape, dcols.dtype)
    with blas.for_product(*dcols.shape, c):
        np.matmul(dcols.T, cache, out=dkernel.reshape(k * f, c))
        dbias = column_sums(np.ascontiguousarray(dy).reshape(-1, f), out=gradient_out(out, 1))
        dx = (dcols @ kernel.reshape(k * f, c)).reshape(n, steps, c) if need_dx else None
    return dx, dkernel, dbias


def upsample1d_forward(x, size):
    """Each step of (n, steps, c) x repeated ``size`` times: (n, steps * size, c)."""
    return np.repeat(x, size, axis=1)


def upsample1d_backward(dy, size):
    """dL/dx of upsample1d_forward: the gradients of a step's copies summed."""
    n, steps, c = dy.shape
    return np.ascontiguousarray(dy).reshape(n, steps // size, size, c).sum(axis=2)


def masked_mean_forward(x, mask):
    """Mean over the steps of (n, steps, c) x where ``mask`` (n, steps) is True (Keras's masked
    GlobalAveragePooling1D: a row with no step left is 0 / 0). Returns (y, cache)."""
    weights = mask.astype(x.dtype)
    count = weights.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = weights / count
        # masked steps are left out, not multiplied by 0 (a NaN there must not leak in)
        y = np.where(mask[:, :, None], x, 0).sum(axis=1) / count
    return y.astype(x.dtype, copy=False), weights


def masked_mean_backward(cache, dy):
    """dL/dx of masked_mean_forward (``cache``: its per-step weights)."""
    return np.ascontiguousarray(cache[:, :, None] * dy[:, None, :])
