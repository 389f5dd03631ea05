"""Conv2D on NHWC tensors as im2col + one BLAS matrix product.

The im2col column order is (kh, kw, cin), which is the row order of a Keras kernel
(kh, kw, cin, cout) reshaped to 2-D, so forward is ``cols @ kernel.reshape(-1, cout)``.
numpy's matmul (OpenBLAS) is called from Python between jitted kernels: numba's own ``np.dot``
would need SciPy (shared/notes/numba-performance.md).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import dual
from .activations import bias_activation_inplace, column_sums


def conv_output_size(size: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """Output length and leading pad along one axis, with TensorFlow's 'same'/'valid' rules."""
    if padding == "valid":
        return (size - k) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2


@dual
def _im2col(x3, c, kh, kw, sh, sw, pt, pl, oh, ow, cols):
    # x3 is the NHWC input viewed as (n, h, w * c). For each output pixel and kernel row the
    # kw * c inputs are one contiguous run (clipped at the left/right border).
    n, h, wc = x3.shape
    w = wc // c
    for b in prange(n):
        for i in range(oh):
            for p in range(kh):
                yy = i * sh + p - pt
                for j in range(ow):
                    row = (b * oh + i) * ow + j
                    base = p * kw * c
                    if yy < 0 or yy >= h:
                        for t in range(kw * c):
                            cols[row, base + t] = 0.0
                        continue
                    x0 = j * sw - pl
                    q0 = max(0, -x0)
                    q1 = min(kw, w - x0)
                    for t in range(q0 * c):
                        cols[row, base + t] = 0.0
                    src = (x0 + q0) * c
                    for t in range((q1 - q0) * c):
                        cols[row, base + q0 * c + t] = x3[b, yy, src + t]
                    for t in range(q1 * c, kw * c):
                        cols[row, base + t] = 0.0


def im2col(x, kh, kw, sh, sw, pt, pl, oh, ow, cols):
    """Fill cols (n*oh*ow, kh*kw*c) with the patches of NHWC x."""
    n, h, w, c = x.shape
    _im2col(
        cols.size,
        np.ascontiguousarray(x).reshape(n, h, w * c),
        c,
        kh,
        kw,
        sh,
        sw,
        pt,
        pl,
        oh,
        ow,
        cols,
    )


@dual
def _col2im(dcols, kh, kw, sh, sw, pt, pl, oh, ow, dx):
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


def conv2d_forward(x, kernel, bias, strides, padding, activation="linear"):
    """Returns (activation(conv(x) + bias), cols); cols is kept for the backward pass."""
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
    bias_activation_inplace(y, bias, activation)
    return y.reshape(n, oh, ow, f), cols


def conv2d_backward(x_shape, cols, kernel, dy, strides, padding, need_dx=True):
    """Returns (dx or None, dkernel, dbias)."""
    n, h, w, c = x_shape
    kh, kw, _, f = kernel.shape
    oh, pt = conv_output_size(h, kh, strides[0], padding)
    ow, pl = conv_output_size(w, kw, strides[1], padding)
    dy2 = dy.reshape(-1, f)
    dkernel = (cols.T @ dy2).reshape(kernel.shape)
    dbias = column_sums(dy2)
    dx = None
    if need_dx:
        dcols = dy2 @ kernel.reshape(kh * kw * c, f).T
        if kh == 1 and kw == 1 and strides == (1, 1):
            dx = dcols.reshape(x_shape)
        else:
            dx = np.empty(x_shape, dtype=dy.dtype)
            _col2im(dcols.size, dcols, kh, kw, strides[0], strides[1], pt, pl, oh, ow, dx)
    return dx, dkernel, dbias
