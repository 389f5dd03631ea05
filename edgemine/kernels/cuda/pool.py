"""Max / average pooling (local and global) on NHWC device arrays, TensorFlow padding rules.

Forward: one thread per output value. Backward: one thread per INPUT value that gathers from the
windows covering it (a fixed order, no atomics), so overlapping windows (stride < pool) are exact
and reproducible. Max pooling keeps the flat (row * W + col) winner per output, first maximum
wins, as on the CPU.
"""

from __future__ import annotations

from numba import cuda, float32, int32

from .._shared import conv_output_size
from ._device import DeviceArray, covering_windows, dummy, empty, grid1d, nhwc_index, view


@cuda.jit(cache=True)
def _max_fwd(x, ph, pw, sh, sw, pt, pl, y, arg):
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for idx in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        b, i, j, ch = nhwc_index(idx, oh, ow, c)
        best = float32(0.0)
        where = int32(-1)
        for p in range(ph):
            yy = i * sh + p - pt
            if yy < 0 or yy >= h:
                continue
            for q in range(pw):
                xx = j * sw + q - pl
                if xx < 0 or xx >= w:
                    continue
                v = x[b, yy, xx, ch]
                if where < 0 or v > best or (v != v and best == best):  # NaN wins
                    best = v
                    where = int32(yy * w + xx)
        y[b, i, j, ch] = best
        arg[b, i, j, ch] = where


@cuda.jit(cache=True)
def _max_bwd(dy, arg, ph, pw, sh, sw, pt, pl, dx, y, relu):
    """With ``relu``, a window's gradient counts only where its output y > 0 (the input came
    from a ReLU, whose backward this applies too)."""
    n, h, w, c = dx.shape
    _, oh, ow, _ = dy.shape
    for idx in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        b, yy, xx, ch = nhwc_index(idx, h, w, c)
        me = yy * w + xx
        i0, i1 = covering_windows(yy, pt, ph, sh, oh)
        j0, j1 = covering_windows(xx, pl, pw, sw, ow)
        acc = float32(0.0)
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                if arg[b, i, j, ch] == me and (not relu or y[b, i, j, ch] > float32(0.0)):
                    acc += dy[b, i, j, ch]
        dx[b, yy, xx, ch] = acc


@cuda.jit(cache=True)
def _avg_fwd(x, ph, pw, sh, sw, pt, pl, y):
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    for idx in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        b, i, j, ch = nhwc_index(idx, oh, ow, c)
        y0 = max(i * sh - pt, 0)
        y1 = min(i * sh - pt + ph, h)
        x0 = max(j * sw - pl, 0)
        x1 = min(j * sw - pl + pw, w)
        acc = float32(0.0)
        for yy in range(y0, y1):
            for xx in range(x0, x1):
                acc += x[b, yy, xx, ch]
        y[b, i, j, ch] = acc / float32((y1 - y0) * (x1 - x0))


@cuda.jit(cache=True)
def _avg_bwd(dy, ph, pw, sh, sw, pt, pl, dx):
    n, h, w, c = dx.shape
    _, oh, ow, _ = dy.shape
    for idx in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        b, yy, xx, ch = nhwc_index(idx, h, w, c)
        i0, i1 = covering_windows(yy, pt, ph, sh, oh)
        j0, j1 = covering_windows(xx, pl, pw, sw, ow)
        acc = float32(0.0)
        for i in range(i0, i1 + 1):
            cy = min(i * sh - pt + ph, h) - max(i * sh - pt, 0)
            for j in range(j0, j1 + 1):
                cx = min(j * sw - pl + pw, w) - max(j * sw - pl, 0)
                acc += dy[b, i, j, ch] / float32(cy * cx)
        dx[b, yy, xx, ch] = acc


@cuda.jit(cache=True)
def _global_fwd(x, is_max, y, arg):
    n, h, w, c = x.shape
    hw = h * w
    for idx in range(cuda.grid(1), n * c, cuda.gridsize(1)):
        b = idx // c
        ch = idx - b * c
        if is_max:
            best = x[b, 0, 0, ch]
            where = int32(0)
            for k in range(1, hw):
                v = x[b, k // w, k % w, ch]
                if v > best or (v != v and best == best):  # NaN wins, as numpy's argmax
                    best = v
                    where = int32(k)
            y[b, ch] = best
            arg[b, ch] = where
        else:
            acc = float32(0.0)
            for k in range(hw):
                acc += x[b, k // w, k % w, ch]
            y[b, ch] = acc / float32(hw)


@cuda.jit(cache=True)
def _global_bwd(dy, arg, is_max, dx):
    n, h, w, c = dx.shape
    hw = h * w
    for idx in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        ch = idx % c
        t = idx // c
        k = t % hw
        b = t // hw
        if is_max:
            dx[b, k // w, k % w, ch] = dy[b, ch] if arg[b, ch] == k else float32(0.0)
        else:
            dx[b, k // w, k % w, ch] = dy[b, ch] / float32(hw)


def _geometry(x_shape, pool, strides, padding):
    oh, pt = conv_output_size(x_shape[1], pool[0], strides[0], padding)
    ow, pl = conv_output_size(x_shape[2], pool[1], strides[1], padding)
    return oh, ow, pt, pl


def pool2d_forward(
    mode: str, x: DeviceArray, pool: tuple[int, int], strides: tuple[int, int], padding: str
) -> tuple[DeviceArray, DeviceArray | None]:
    """Returns (y, argmax or None)."""
    n, _, _, c = x.shape
    ph, pw, sh, sw = int(pool[0]), int(pool[1]), int(strides[0]), int(strides[1])
    oh, ow, pt, pl = _geometry(x.shape, (ph, pw), (sh, sw), padding)
    y = empty((n, oh, ow, c), x.dtype)
    if mode == "max":
        arg = empty((n, oh, ow, c), "int32")
        if y.size:
            _max_fwd[grid1d(y.size)](x, ph, pw, sh, sw, pt, pl, y, arg)
        return y, arg
    if y.size:
        _avg_fwd[grid1d(y.size)](x, ph, pw, sh, sw, pt, pl, y)
    return y, None


def pool2d_backward(
    mode: str,
    x_shape: tuple,
    arg: DeviceArray | None,
    dy: DeviceArray,
    pool: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    relu_y: DeviceArray | None = None,
) -> DeviceArray:
    """dL/dx of pool2d_forward. ``relu_y``: the max pooling's output y when its input came from
    a ReLU; the ReLU's backward is then applied too (in the same kernel)."""
    ph, pw, sh, sw = int(pool[0]), int(pool[1]), int(strides[0]), int(strides[1])
    _, _, pt, pl = _geometry(x_shape, (ph, pw), (sh, sw), padding)
    dx = empty(tuple(int(d) for d in x_shape), dy.dtype)
    if dx.size == 0:
        return dx
    if mode == "max":
        relu = relu_y is not None
        y = relu_y if relu else view(dummy(), 1, 1, 1, 1)
        _max_bwd[grid1d(dx.size)](dy, arg, ph, pw, sh, sw, pt, pl, dx, y, relu)
    else:
        _avg_bwd[grid1d(dx.size)](dy, ph, pw, sh, sw, pt, pl, dx)
    return dx


def global_pool_forward(mode: str, x: DeviceArray) -> tuple[DeviceArray, DeviceArray | None]:
    """Global pooling over H and W of NHWC x. Returns (y, cache)."""
    n, h, w, c = x.shape
    y = empty((n, c), x.dtype)
    is_max = mode == "max"
    arg = empty((n, c), "int32") if is_max else None
    if y.size:
        _global_fwd[grid1d(n * c)](x, is_max, y, arg if is_max else _no_arg())
    return y, arg


def global_pool_backward(
    mode: str, x_shape: tuple, cache: DeviceArray | None, dy: DeviceArray
) -> DeviceArray:
    """dL/dx of global_pool_forward."""
    dx = empty(tuple(int(d) for d in x_shape), dy.dtype)
    if dx.size:
        is_max = mode == "max"
        _global_bwd[grid1d(dx.size)](dy, cache if is_max else _no_arg(), is_max, dx)
    return dx


def _no_arg():
    return view(dummy("int32"), 1, 1)
