"""Conv2D on NHWC tensors as im2col + one BLAS matrix product.

The im2col column order is (kh, kw, cin), which is the row order of a Keras kernel
(kh, kw, cin, cout) reshaped to 2-D, so forward is ``cols @ kernel.reshape(-1, cout)``.
numpy's matmul (OpenBLAS) is called from Python between jitted kernels: numba's own ``np.dot``
would need SciPy (shared/notes/numba-performance.md).

The patch matrix has two layouts, both seen by the matrix products as the same (pixels, K)
matrix. Usually it is row-major: each pixel's kw * cin inputs per kernel row are one contiguous
run, copied at memcpy speed. For a small receptive field (a first layer on grey images, K = 9)
those runs are a few floats long, so the matrix is built column-major instead (K rows of all
pixels, inner runs of a whole image row): measured 3-5x faster to build for the seed CNN's first
layer, and BLAS takes either layout at the same speed.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._shared import conv_geometry
from . import blas
from ._jit import dual
from .activations import activation_backward, bias_activation_inplace, column_sums, gradient_out


@dual
def _im2col_rows(x3, c, kh, kw, sh, sw, pt, pl, oh, ow, cols):
    # x3 is the NHWC input viewed as (n, h, w * c). Loops follow the output's row order (writes
    # are sequential); each kernel row of a window copies its in-bounds inputs as one contiguous
    # run. The runs are slices on purpose: indexing with an offset Numba cannot prove
    # non-negative adds a wrap-around select per element, which stops vectorisation (4-6x slower).
    n, h, wc = x3.shape
    w = wc // c
    run = kw * c
    for b in prange(n):
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                x0 = j * sw - pl
                q0 = max(0, -x0)
                q1 = min(kw, w - x0)
                for p in range(kh):
                    yy = i * sh + p - pt
                    dst = cols[row, p * run : (p + 1) * run]
                    if yy < 0 or yy >= h:
                        dst[:] = 0
                        continue
                    src = x3[b, yy, (x0 + q0) * c : (x0 + q1) * c]
                    dst[: q0 * c] = 0
                    inner = dst[q0 * c : q1 * c]
                    for t in range(inner.size):
                        inner[t] = src[t]
                    dst[q1 * c :] = 0


@dual
def _im2col_cols(x, kh, kw, sh, sw, pt, pl, oh, ow, colsT):
    # colsT is (K, pixels): for each kernel tap, the inputs it sees for a whole output row are
    # one run along the image row (strided by sw * c).
    n, h, w, c = x.shape
    for b in prange(n):
        for p in range(kh):
            for q in range(kw):
                for ch in range(c):
                    t = (p * kw + q) * c + ch
                    for i in range(oh):
                        yy = i * sh + p - pt
                        base = (b * oh + i) * ow
                        if yy < 0 or yy >= h:
                            for j in range(ow):
                                colsT[t, base + j] = 0
                            continue
                        for j in range(ow):
                            xx = j * sw + q - pl
                            colsT[t, base + j] = x[b, yy, xx, ch] if 0 <= xx < w else 0


COLUMN_MAJOR_MAX_K = 16  # receptive fields (kh * kw * cin) up to this size use the K-major layout


def im2col(x, kh, kw, sh, sw, pt, pl, oh, ow, cols=None):
    """The (n * oh * ow, kh * kw * c) patch matrix of NHWC x, filled into ``cols`` when given
    (row-major only) or into a new array in the layout that is fastest to build."""
    n, h, w, c = x.shape
    x = np.ascontiguousarray(x)
    k = kh * kw * c
    if cols is None and k <= COLUMN_MAJOR_MAX_K:
        cols_t = np.empty((k, n * oh * ow), dtype=x.dtype)
        _im2col_cols(cols_t.size, x, kh, kw, sh, sw, pt, pl, oh, ow, cols_t)
        return cols_t.T
    if cols is None:
        cols = np.empty((n * oh * ow, k), dtype=x.dtype)
    _im2col_rows(cols.size, x.reshape(n, h, w * c), c, kh, kw, sh, sw, pt, pl, oh, ow, cols)
    return cols


@dual
def _col2im(dcols, c, kh, kw, sh, sw, pt, pl, oh, ow, dx3):
    # the adjoint of _im2col_rows: add each patch row back into dx (viewed as (n, h, w * c))
    n, h, wc = dx3.shape
    w = wc // c
    run = kw * c
    for b in prange(n):
        dx3[b] = 0
        for i in range(oh):
            for j in range(ow):
                row = (b * oh + i) * ow + j
                x0 = j * sw - pl
                q0 = max(0, -x0)
                q1 = min(kw, w - x0)
                for p in range(kh):
                    yy = i * sh + p - pt
                    if yy < 0 or yy >= h:
                        continue
                    dst = dx3[b, yy, (x0 + q0) * c : (x0 + q1) * c]
                    src = dcols[row, p * run + q0 * c : p * run + q1 * c]
                    for t in range(dst.size):
                        dst[t] += src[t]


INFERENCE_CHUNK_ROWS = 4096  # im2col rows per chunk when no cache is kept (bounded memory)


def conv2d_forward(x, kernel, bias, strides, padding, activation="linear", keep=True, corner=None):
    """Returns (activation(conv(x) + bias), cache). ``cache`` is what conv2d_backward needs
    (the patch matrix); with ``keep=False`` (inference) it is None, and large batches are
    processed in chunks so that the patch buffer stays cache-sized. ``corner``: (rows, cols),
    compute only the output's first rows and columns (all that a 'valid' pooling reads)."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    sh, sw = strides
    oh, ow, pt, pl, cropped = conv_geometry(x.shape, kh, kw, strides, padding, corner)
    k2 = kernel.reshape(kh * kw * c, f)
    rows = n * oh * ow
    if kh == 1 and kw == 1 and strides == (1, 1) and not cropped:
        cols = np.ascontiguousarray(x).reshape(rows, c)
        with blas.for_product(rows, f, c):
            y = cols @ k2
    elif keep or kh * kw * c <= COLUMN_MAJOR_MAX_K:
        cols = im2col(x, kh, kw, sh, sw, pt, pl, oh, ow)
        with blas.for_product(rows, f, kh * kw * c):
            y = cols @ k2
    else:
        chunk = max(1, INFERENCE_CHUNK_ROWS // (oh * ow))
        y = np.empty((rows, f), dtype=x.dtype)
        cols = np.empty((min(chunk, n) * oh * ow, kh * kw * c), dtype=x.dtype)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            part = im2col(x[s:e], kh, kw, sh, sw, pt, pl, oh, ow, cols[: (e - s) * oh * ow])
            np.matmul(part, k2, out=y[s * oh * ow : e * oh * ow])
    bias_activation_inplace(y, bias, activation)
    return y.reshape(n, oh, ow, f), (cols if keep else None)


def conv2d_backward(
    x_shape,
    cache,
    kernel,
    dy,
    strides,
    padding,
    need_dx=True,
    activation="linear",
    y=None,
    out=None,
    corner=None,
):
    """Returns (dx or None, dkernel, dbias); ``cache`` is conv2d_forward's patch matrix, and
    ``corner`` the one it was given (``dy`` then has that corner's shape; the inputs that only
    the rest of the output reads get a zero gradient).

    ``dy`` is the gradient of the convolution's output, or, with ``activation`` and the forward
    output ``y``, of the activation's output (the activation's backward is applied first).
    ``out``: None, or (dkernel, dbias) arrays (either None) that the weight gradients are
    written into."""
    kh, kw, c, f = kernel.shape
    if activation != "linear":
        dy = activation_backward(activation, y, dy)
    n, h, w, _ = x_shape
    oh, ow, pt, pl, cropped = conv_geometry(x_shape, kh, kw, strides, padding, corner)
    dy2 = dy.reshape(-1, f)
    dkernel = gradient_out(out, 0)
    if dkernel is None:
        dkernel = np.empty(kernel.shape, dy2.dtype)
    with blas.for_product(*cache.shape, f):  # small products on one thread, as Dense's
        np.matmul(cache.T, dy2, out=dkernel.reshape(-1, f))
    dbias = column_sums(dy2, out=gradient_out(out, 1))
    dx = None
    if need_dx:
        with blas.for_product(*cache.shape, f):
            dcols = dy2 @ kernel.reshape(kh * kw * c, f).T
        if kh == 1 and kw == 1 and strides == (1, 1) and not cropped:
            dx = dcols.reshape(x_shape)
        else:
            dx = np.empty(x_shape, dtype=dy.dtype)
            _col2im(
                dcols.size,
                dcols,
                c,
                kh,
                kw,
                strides[0],
                strides[1],
                pt,
                pl,
                oh,
                ow,
                dx.reshape(n, h, w * c),
            )
    return dx, dkernel, dbias
