"""Conv2D on NHWC tensors as im2col + one BLAS matrix product.

The im2col column order is (kh, kw, cin), which is the row order of a Keras kernel
(kh, kw, cin, cout) reshaped to 2-D, so forward is ``cols @ kernel.reshape(-1, cout)``.
numpy's matmul (OpenBLAS) is called from Python between jitted kernels: numba's own ``np.dot``
would need SciPy (shared/notes/numba-performance.md).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


def conv_output_size(size: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """Output length and leading pad along one axis, with TensorFlow's 'same'/'valid' rules."""
    if padding == "valid":
        return (size - k) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2


@njit(cache=True, parallel=True)
def im2col(x, kh, kw, sh, sw, pt, pl, oh, ow, cols):
    n, h, w, c = x.shape
    for b in prange(n):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                for p in range(kh):
                    yy = i * sh + p - pt
                    for q in range(kw):
                        xx = j * sw + q - pl
                        base = (p * kw + q) * c
                        if 0 <= yy < h and 0 <= xx < w:
                            for ch in range(c):
                                cols[row, base + ch] = x[b, yy, xx, ch]
                        else:
                            for ch in range(c):
                                cols[row, base + ch] = 0.0


@njit(cache=True, parallel=True)
def col2im(dcols, kh, kw, sh, sw, pt, pl, oh, ow, dx):
    n, h, w, c = dx.shape
    for b in prange(n):
        dx[b] = 0.0
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                for p in range(kh):
                    yy = i * sh + p - pt
                    if yy < 0 or yy >= h:
                        continue
                    for q in range(kw):
                        xx = j * sw + q - pl
                        if xx < 0 or xx >= w:
                            continue
                        base = (p * kw + q) * c
                        for ch in range(c):
                            dx[b, yy, xx, ch] += dcols[row, base + ch]


def conv2d_forward(x, kernel, bias, strides, padding):
    """Returns (y, cols); cols is kept for the backward pass."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    oh, pt = conv_output_size(h, kh, strides[0], padding)
    ow, pl = conv_output_size(w, kw, strides[1], padding)
    if kh == 1 and kw == 1 and strides == (1, 1):
        cols = np.ascontiguousarray(x).reshape(n * h * w, c)
    else:
        cols = np.empty((n * oh * ow, kh * kw * c), dtype=x.dtype)
        im2col(x, kh, kw, strides[0], strides[1], pt, pl, oh, ow, cols)
    y = cols @ kernel.reshape(kh * kw * c, f)
    if bias is not None:
        y += bias
    return y.reshape(n, oh, ow, f), cols


def conv2d_backward(x_shape, cols, kernel, dy, strides, padding, need_dx=True):
    """Returns (dx or None, dkernel, dbias)."""
    n, h, w, c = x_shape
    kh, kw, _, f = kernel.shape
    oh, pt = conv_output_size(h, kh, strides[0], padding)
    ow, pl = conv_output_size(w, kw, strides[1], padding)
    dy2 = dy.reshape(-1, f)
    dkernel = (cols.T @ dy2).reshape(kernel.shape)
    dbias = dy2.sum(axis=0)
    dx = None
    if need_dx:
        dcols = dy2 @ kernel.reshape(kh * kw * c, f).T
        if kh == 1 and kw == 1 and strides == (1, 1):
            dx = dcols.reshape(x_shape)
        else:
            dx = np.empty(x_shape, dtype=dy.dtype)
            col2im(dcols, kh, kw, strides[0], strides[1], pt, pl, oh, ow, dx)
    return dx, dkernel, dbias
