"""Conv2D on NHWC tensors as im2col + one BLAS matrix product.

The im2col column order is (kh, kw, cin), which is the row order of a Keras kernel
(kh, kw, cin, cout) reshaped to 2-D, so forward is ``cols @ kernel.reshape(-1, cout)``.
numpy's matmul (OpenBLAS) is called from Python between jitted kernels: numba's own ``np.dot``
would need SciPy (shared/notes/numba-performance.md).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import VECTORIZE, dual
from .activations import (
    ACTIVATION_CODES,
    activation_backward,
    bias_activation_inplace,
    column_sums,
)


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


@dual(fastmath=VECTORIZE)
def _direct_conv(x, k2, bias, code, kh, kw, sh, sw, pt, pl, y):
    # Direct convolution for a small receptive field (kh*kw*cin): im2col + GEMM with K of 9 is
    # memory-bound, while here each input value is read once per window and the output channels
    # (contiguous in NHWC) form the vectorised inner loop. Bias and activation are fused.
    n, h, w, c = x.shape
    _, oh, ow, f = y.shape
    for b in prange(n):
        acc = np.empty(f, dtype=y.dtype)
        for i in range(oh):
            for j in range(ow):
                acc[:] = bias
                for p in range(kh):
                    yy = i * sh + p - pt
                    if yy < 0 or yy >= h:
                        continue
                    for q in range(kw):
                        xx = j * sw + q - pl
                        if xx < 0 or xx >= w:
                            continue
                        t = (p * kw + q) * c
                        for ch in range(c):
                            xv = x[b, yy, xx, ch]
                            for o in range(f):
                                acc[o] += xv * k2[t + ch, o]
                # (separate names: reusing one for a float64 literal would widen the hot loop)
                for o in range(f):
                    a = acc[o]
                    if code == 1:
                        y[b, i, j, o] = a if a > 0 else 0
                    elif code == 2:
                        y[b, i, j, o] = (
                            1 / (1 + np.exp(-a)) if a >= 0 else np.exp(a) / (1 + np.exp(a))
                        )
                    elif code == 3:
                        y[b, i, j, o] = np.tanh(a)
                    else:
                        y[b, i, j, o] = a


DIRECT_MAX_K = 16  # receptive fields (kh*kw*cin) up to this size use the direct kernel
INFERENCE_CHUNK_ROWS = 4096  # im2col rows per chunk when no cache is kept (bounded memory)


def conv2d_forward(x, kernel, bias, strides, padding, activation="linear", keep=True):
    """Returns (activation(conv(x) + bias), cache). ``cache`` is what conv2d_backward needs
    (the im2col matrix, or the input itself); with ``keep=False`` (inference) it is None, and
    large batches are processed in chunks so that the im2col buffer stays cache-sized."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    oh, pt = conv_output_size(h, kh, strides[0], padding)
    ow, pl = conv_output_size(w, kw, strides[1], padding)
    code = ACTIVATION_CODES.get(activation)
    if kh * kw * c <= DIRECT_MAX_K and code is not None:
        x = np.ascontiguousarray(x)
        y = np.empty((n, oh, ow, f), dtype=x.dtype)
        _direct_conv(
            y.size * kh * kw * c,
            x,
            np.ascontiguousarray(kernel).reshape(kh * kw * c, f),
            bias if bias is not None else np.zeros(f, dtype=x.dtype),
            code,
            kh,
            kw,
            strides[0],
            strides[1],
            pt,
            pl,
            y,
        )
        return y, (x if keep else None)
    k2 = kernel.reshape(kh * kw * c, f)
    if kh == 1 and kw == 1 and strides == (1, 1):
        cols = np.ascontiguousarray(x).reshape(n * h * w, c)
        y = cols @ k2
        bias_activation_inplace(y, bias, activation)
        return y.reshape(n, oh, ow, f), (cols if keep else None)
    per_sample = oh * ow
    chunk = n if keep else max(1, INFERENCE_CHUNK_ROWS // per_sample)
    y = np.empty((n * per_sample, f), dtype=x.dtype)
    cols = np.empty((min(chunk, n) * per_sample, kh * kw * c), dtype=x.dtype)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        part = cols[: (e - s) * per_sample]
        im2col(x[s:e], kh, kw, strides[0], strides[1], pt, pl, oh, ow, part)
        np.matmul(part, k2, out=y[s * per_sample : e * per_sample])
    bias_activation_inplace(y, bias, activation)
    return y.reshape(n, oh, ow, f), (cols if keep else None)


def _cols_from_cache(cache, kernel, strides, padding):
    """The im2col matrix for the backward pass (rebuilt when forward kept only its input)."""
    if cache.ndim == 2:
        return cache
    n, h, w, c = cache.shape
    kh, kw, _, _ = kernel.shape
    oh, pt = conv_output_size(h, kh, strides[0], padding)
    ow, pl = conv_output_size(w, kw, strides[1], padding)
    cols = np.empty((n * oh * ow, kh * kw * c), dtype=cache.dtype)
    im2col(cache, kh, kw, strides[0], strides[1], pt, pl, oh, ow, cols)
    return cols


@dual(fastmath=VECTORIZE)
def _direct_conv_grad(x, y, dy, code, kh, kw, sh, sw, pt, pl, part_k, part_b):
    # Per-sample partial sums of dkernel and dbias (reduced afterwards in a fixed order, so the
    # result does not depend on the thread count), with the activation's backward fused:
    # dz = dy * act'(y) is never stored.
    n, h, w, c = x.shape
    _, oh, ow, f = y.shape
    for b in prange(n):
        dz = np.empty(f, dtype=dy.dtype)
        part_k[b] = 0.0
        part_b[b] = 0.0
        for i in range(oh):
            for j in range(ow):
                for o in range(f):
                    g = dy[b, i, j, o]
                    out = y[b, i, j, o]
                    if code == 1:
                        dz[o] = g if out > 0 else 0
                    elif code == 2:
                        dz[o] = g * out * (1 - out)
                    elif code == 3:
                        dz[o] = g * (1 - out * out)
                    else:
                        dz[o] = g
                    part_b[b, o] += dz[o]
                for p in range(kh):
                    yy = i * sh + p - pt
                    if yy < 0 or yy >= h:
                        continue
                    for q in range(kw):
                        xx = j * sw + q - pl
                        if xx < 0 or xx >= w:
                            continue
                        t = (p * kw + q) * c
                        for ch in range(c):
                            xv = x[b, yy, xx, ch]
                            for o in range(f):
                                part_k[b, t + ch, o] += xv * dz[o]


def conv2d_backward(
    x_shape, cache, kernel, dy, strides, padding, need_dx=True, activation="linear", y=None
):
    """Returns (dx or None, dkernel, dbias); ``cache`` is conv2d_forward's.

    ``dy`` is the gradient of the convolution's output, or, with ``activation`` and the forward
    output ``y``, of the activation's output (then the activation's backward is applied here,
    fused into the kernel-gradient pass where the receptive field is small)."""
    kh, kw, c, f = kernel.shape
    code = ACTIVATION_CODES.get(activation)
    if cache.ndim == 4 and not need_dx and code is not None:
        n = x_shape[0]
        oh, pt = conv_output_size(x_shape[1], kh, strides[0], padding)
        ow, pl = conv_output_size(x_shape[2], kw, strides[1], padding)
        part_k = np.empty((n, kh * kw * c, f), dtype=dy.dtype)
        part_b = np.empty((n, f), dtype=dy.dtype)
        _direct_conv_grad(
            dy.size * kh * kw * c,
            cache,
            np.ascontiguousarray(y),
            np.ascontiguousarray(dy),
            code,
            kh,
            kw,
            strides[0],
            strides[1],
            pt,
            pl,
            part_k,
            part_b,
        )
        return None, part_k.sum(axis=0).reshape(kernel.shape), part_b.sum(axis=0)
    if activation != "linear":
        dy = activation_backward(activation, y, dy)
    cols = _cols_from_cache(cache, kernel, strides, padding)
    n, h, w, c = x_shape
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
