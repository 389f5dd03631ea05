"""Max and average 2-D pooling on NHWC tensors, with TensorFlow's 'valid'/'same' padding.

Max pooling remembers the flat (row * W + col) position of each winner for the backward scatter;
'same' average pooling divides by the number of in-bounds cells, as TensorFlow does.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._shared import conv_output_size
from ._jit import VECTORIZE, dual
from .activations import activation_backward


@dual
def _max_fwd(x, ph, pw, sh, sw, pt, pl, y, arg):
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for b in prange(n):
        best = np.empty(c, dtype=x.dtype)
        where = np.empty(c, dtype=np.int32)
        for i in range(oh):
            for j in range(ow):
                best[:] = -np.inf
                where[:] = -1
                for p in range(ph):
                    yy = i * sh + p - pt
                    if yy < 0 or yy >= h:
                        continue
                    for q in range(pw):
                        xx = j * sw + q - pl
                        if xx < 0 or xx >= w:
                            continue
                        for ch in range(c):
                            v = x[b, yy, xx, ch]
                            bv = best[ch]
                            # a NaN wins (the first one), as numpy's argmax: never dropped
                            if v > bv or where[ch] < 0 or (v != v and bv == bv):
                                best[ch] = v
                                where[ch] = yy * w + xx
                for ch in range(c):
                    y[b, i, j, ch] = best[ch]
                    arg[b, i, j, ch] = where[ch]


@dual
def _max_bwd(dy, arg, dx):
    n, oh, ow, c = dy.shape
    w = dx.shape[2]
    for b in prange(n):
        dx[b] = 0.0
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    k = arg[b, i, j, ch]
                    dx[b, k // w, k % w, ch] += dy[b, i, j, ch]


@dual
def _avg(x, ph, pw, sh, sw, pt, pl, y, backward):
    # forward: x is the input, y the output. backward: x is dy (output-shaped), y is dx.
    if backward:
        n, h, w, c = y.shape
        oh, ow = x.shape[1], x.shape[2]
    else:
        n, h, w, c = x.shape
        oh, ow = y.shape[1], y.shape[2]
    for b in prange(n):
        if backward:
            y[b] = 0.0
        acc = np.empty(c, dtype=x.dtype)
        for i in range(oh):
            y0 = max(i * sh - pt, 0)
            y1 = min(i * sh - pt + ph, h)
            for j in range(ow):
                x0 = max(j * sw - pl, 0)
                x1 = min(j * sw - pl + pw, w)
                inv = 1.0 / ((y1 - y0) * (x1 - x0))
                if backward:
                    for yy in range(y0, y1):
                        for xx in range(x0, x1):
                            for ch in range(c):
                                y[b, yy, xx, ch] += x[b, i, j, ch] * inv
                else:
                    acc[:] = 0.0
                    for yy in range(y0, y1):
                        for xx in range(x0, x1):
                            for ch in range(c):
                                acc[ch] += x[b, yy, xx, ch]
                    for ch in range(c):
                        y[b, i, j, ch] = acc[ch] * inv


def _geometry(x_shape, pool, strides, padding):
    oh, pt = conv_output_size(x_shape[1], pool[0], strides[0], padding)
    ow, pl = conv_output_size(x_shape[2], pool[1], strides[1], padding)
    return oh, ow, pt, pl


@dual(fastmath=VECTORIZE)
def _tiled_max_fwd(x, ph, pw, y, which):
    # Windows that tile the input (strides == pool_size, 'valid'): each input cell belongs to at
    # most one window, so the winner is stored as its position inside the window (uint8). The
    # channel loop, contiguous in NHWC, is innermost and carries the best value and its position
    # in int32 locals: updating the uint8 output in place inside the window loop kept LLVM from
    # vectorising it (seed CNN's first pooling: 2.9 ms against 0.55 ms; 2x2: 0.10 ms).
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for b in prange(n):
        best = np.empty(c, dtype=x.dtype)
        arg = np.empty(c, dtype=np.int32)
        for i in range(oh):
            for j in range(ow):
                yr = y[b, i, j]
                wr = which[b, i, j]
                if ph == 2 and pw == 2:  # the usual window: all four cells in registers
                    x0, x1 = x[b, 2 * i, 2 * j], x[b, 2 * i, 2 * j + 1]
                    x2, x3 = x[b, 2 * i + 1, 2 * j], x[b, 2 * i + 1, 2 * j + 1]
                    for ch in range(c):
                        a = x0[ch]
                        k = np.int32(0)
                        a, k = _max_step(x1[ch], a, k, np.int32(1))
                        a, k = _max_step(x2[ch], a, k, np.int32(2))
                        a, k = _max_step(x3[ch], a, k, np.int32(3))
                        yr[ch] = a
                        wr[ch] = np.uint8(k)
                    continue
                x0 = x[b, i * ph, j * pw]
                for ch in range(c):
                    best[ch] = x0[ch]
                    arg[ch] = 0
                for k in range(1, ph * pw):
                    xr = x[b, i * ph + k // pw, j * pw + k % pw]
                    kk = np.int32(k)
                    for ch in range(c):
                        best[ch], arg[ch] = _max_step(xr[ch], best[ch], arg[ch], kk)
                for ch in range(c):
                    yr[ch] = best[ch]
                    wr[ch] = np.uint8(arg[ch])


@njit(inline="always", fastmath=VECTORIZE, error_model="numpy")
def _max_step(v, best, arg, k):
    """(best, arg) after the window cell k with value v: v wins if larger, or if it is the first
    NaN (a NaN is never dropped, as numpy's argmax). Selects, not branches: they vectorise."""
    take = (v > best) | ((v != v) & (best == best))
    return (v if take else best), (k if take else arg)


@dual(fastmath=VECTORIZE)
def _tiled_max_bwd(dy, which, ph, pw, dx):
    # Writes every cell of dx exactly once: no zero fill followed by a scatter.
    n, h, w, c = dx.shape
    _, oh, ow, _ = dy.shape
    for b in prange(n):
        for yy in range(oh * ph, h):
            dx[b, yy] = 0
        for i in range(oh):
            for p in range(ph):
                yy = i * ph + p
                for xx in range(ow * pw, w):
                    dx[b, yy, xx] = 0
                for j in range(ow):
                    for q in range(pw):
                        k = p * pw + q
                        xx = j * pw + q
                        for ch in range(c):
                            dx[b, yy, xx, ch] = dy[b, i, j, ch] if which[b, i, j, ch] == k else 0


def _tiles(pool, strides, padding) -> bool:
    return padding == "valid" and tuple(strides) == tuple(pool) and pool[0] * pool[1] <= 255


def pool2d_forward(mode, x, pool, strides, padding):
    """Returns (y, cache): the winners' positions for max pooling (backend-private), else None."""
    n, _, _, c = x.shape
    oh, ow, pt, pl = _geometry(x.shape, pool, strides, padding)
    y = np.empty((n, oh, ow, c), dtype=x.dtype)
    if mode == "max" and _tiles(pool, strides, padding):
        which = np.empty((n, oh, ow, c), dtype=np.uint8)
        _tiled_max_fwd(x.size, np.ascontiguousarray(x), pool[0], pool[1], y, which)
        return y, which
    if mode == "max":
        arg = np.empty((n, oh, ow, c), dtype=np.int32)
        _max_fwd(x.size, x, pool[0], pool[1], strides[0], strides[1], pt, pl, y, arg)
        return y, arg
    _avg(x.size, x, pool[0], pool[1], strides[0], strides[1], pt, pl, y, False)
    return y, None


def pool2d_backward(mode, x_shape, arg, dy, pool, strides, padding, relu_y=None):
    """dL/dx of pool2d_forward. ``relu_y``: the max pooling's output y when its input came from
    a ReLU; the ReLU's backward is then applied to dy first (4x smaller than the input's)."""
    if relu_y is not None:
        dy = activation_backward("relu", relu_y, dy)
    dx = np.empty(x_shape, dtype=dy.dtype)
    if mode == "max" and _tiles(pool, strides, padding):
        _tiled_max_bwd(dx.size, np.ascontiguousarray(dy), arg, pool[0], pool[1], dx)
        return dx
    if mode == "max":
        _max_bwd(dx.size, np.ascontiguousarray(dy), arg, dx)
        return dx
    _, _, pt, pl = _geometry(x_shape, pool, strides, padding)
    _avg(
        dx.size,
        np.ascontiguousarray(dy),
        pool[0],
        pool[1],
        strides[0],
        strides[1],
        pt,
        pl,
        dx,
        True,
    )
    return dx
