"""1-D convolution, its transpose and the 1-D layers' sequence ops on (batch, steps, channels)
device arrays, as the CPU backend (kernels/cpu/conv1d.py): im2col + the tiled GEMM, and col2im
as a GATHER (each input step sums the patch entries that read it, in a fixed order: no atomics,
reproducible). The transposed convolution's col2im also adds the bias and applies the
activation.
"""

from __future__ import annotations

from numba import cuda, float32

from .._shared import conv1d_geometry, conv1d_transpose_geometry, gradient_out
from ._device import ACT_CODES, DeviceArray, act, dummy, empty, grid1d, view, workspace
from .activations import activation_forward, softmax_rows_inplace
from .gemm import bias_gradient, gemm


@cuda.jit(cache=True)
def _im2col(x, k, stride, dilation, pad, out, cols):
    n, steps, c = x.shape
    ncol = k * c
    for idx in range(cuda.grid(1), cols.shape[0] * ncol, cuda.gridsize(1)):
        row = idx // ncol
        kidx = idx - row * ncol
        b = row // out
        i = row - b * out
        p = kidx // c
        ch = kidx - p * c
        t = i * stride - pad + p * dilation
        v = float32(0.0)
        if t >= 0 and t < steps:
            v = x[b, t, ch]
        cols[row, kidx] = v


@cuda.jit(cache=True)
def _col2im(cols, k, stride, dilation, pad, out, bias, has_bias, code, dx):
    n, steps, c = dx.shape
    for idx in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        ch = idx % c
        r = idx // c
        t = r % steps
        b = r // steps
        acc = float32(0.0)
        for p in range(k):
            v = t + pad - p * dilation
            if v < 0 or v % stride != 0 or v // stride >= out:
                continue
            acc += cols[b * out + v // stride, p * c + ch]
        if has_bias:
            acc += bias[ch]
        dx[b, t, ch] = act(acc, code)


def _col2im_into(cols, k, stride, dilation, pad, out, shape, bias=None, activation="linear"):
    dx = empty(shape, cols.dtype)
    if dx.size:
        has_bias = bias is not None
        code = ACT_CODES.get(activation, 0)
        _col2im[grid1d(dx.size)](
            cols, k, stride, dilation, pad, out, bias if has_bias else dummy(), has_bias, code, dx
        )
    return dx


def _im2col_of(x, k, stride, dilation, pad, out, name=None):
    n, _, c = x.shape
    shape = (n * out, k * c)
    cols = empty(shape, x.dtype) if name is None else workspace(name, shape)
    if cols.size:
        _im2col[grid1d(cols.size)](x, k, stride, dilation, pad, out, cols)
    return cols


def conv1d_forward(
    x: DeviceArray,
    kernel: DeviceArray,
    bias: DeviceArray | None,
    stride: int,
    padding: str,
    dilation: int = 1,
    activation: str = "linear",
    keep: bool = True,
) -> tuple[DeviceArray, DeviceArray]:
    """Returns (activation(conv1d(x) + bias), cols) (cols kept even with ``keep=False``, as
    Conv2D on the device)."""
    n, steps, c = x.shape
    k, _, f = kernel.shape
    stride, dilation = int(stride), int(dilation)
    out, pad, _ = conv1d_geometry(steps, k, stride, dilation, padding)
    if k == 1 and stride == 1:
        cols = view(x, n * steps, c)
    else:
        cols = _im2col_of(x, k, stride, dilation, pad, out)
    fused = activation if activation != "softmax" else "linear"
    y = gemm(cols, view(kernel, k * c, f), bias=bias, activation=fused)
    if activation == "softmax":
        softmax_rows_inplace(y)
    return view(y, n, out, f), cols


def conv1d_backward(
    x_shape: tuple,
    cache: DeviceArray,
    kernel: DeviceArray,
    dy: DeviceArray,
    stride: int,
    padding: str,
    dilation: int = 1,
    need_dx: bool = True,
    activation: str = "linear",
    y: DeviceArray | None = None,
    out: tuple | None = None,
) -> tuple[DeviceArray | None, DeviceArray, DeviceArray]:
    """Returns (dx or None, dkernel, dbias) of conv1d_forward, as conv2d_backward."""
    n, steps, c = (int(d) for d in x_shape)
    k, _, f = kernel.shape
    stride, dilation = int(stride), int(dilation)
    length, pad, _ = conv1d_geometry(steps, k, stride, dilation, padding)
    dy2, dbias = bias_gradient(activation, y, dy, gradient_out(out, 1))
    dkernel = gradient_out(out, 0)
    if dkernel is None:
        dkernel = empty((k, c, f), dy.dtype)
    gemm(cache, dy2, view(dkernel, k * c, f), trans_a=True)
    dx = None
    if need_dx:
        k2 = view(kernel, k * c, f)
        if k == 1 and stride == 1:
            dx = view(gemm(dy2, k2, trans_b=True), n, steps, c)
        else:  # the patch gradients live only until col2im has gathered them: scratch
            dcols = gemm(dy2, k2, workspace("conv1d_dcols", (dy2.shape[0], k * c)), trans_b=True)
            dx = _col2im_into(dcols, k, stride, dilation, pad, length, (n, steps, c))
    return dx, dkernel, dbias


def conv1d_transpose_forward(
    x: DeviceArray,
    kernel: DeviceArray,
    bias: DeviceArray | None,
    stride: int,
    padding: str,
    dilation: int = 1,
    activation: str = "linear",
) -> tuple[DeviceArray, DeviceArray]:
    """Returns (activation(conv1d_transpose(x) + bias), x as (n * steps, cin))."""
    n, steps, c = x.shape
    k, f, _ = kernel.shape
    stride, dilation = int(stride), int(dilation)
    length, pad = conv1d_transpose_geometry(steps, k, stride, dilation, padding)
    x2 = view(x, n * steps, c)
    cols = gemm(
        x2, view(kernel, k * f, c), workspace("conv1d_t_cols", (n * steps, k * f)), trans_b=True
    )
    fused = activation if activation in ACT_CODES else "linear"
    y = _col2im_into(cols, k, stride, dilation, pad, steps, (n, length, f), bias, fused)
    if fused != activation:
        y = activation_forward(activation, y)
    return y, x2


def conv1d_transpose_backward(
    cache: DeviceArray,
    kernel: DeviceArray,
    dy: DeviceArray,
    stride: int,
    padding: str,
    dilation: int = 1,
    need_dx: bool = True,
    activation: str = "linear",
    y: DeviceArray | None = None,
    out: tuple | None = None,
) -> tuple[DeviceArray | None, DeviceArray, DeviceArray]:
    """Returns (dx or None, dkernel, dbias) of conv1d_transpose_forward."""
    k, f, c = kernel.shape
    stride, dilation = int(stride), int(dilation)
    n = dy.shape[0]
    steps = cache.shape[0] // n
    _, pad = conv1d_transpose_geometry(steps, k, stride, dilation, padding)
    dz2, dbias = bias_gradient(activation, y, dy, gradient_out(out, 1))
    dz = view(dz2, n, dy.shape[1], f)
    dcols = _im2col_of(dz, k, stride, dilation, pad, steps, name="conv1d_t_dcols")
    dkernel = gradient_out(out, 0)
    if dkernel is None:
        dkernel = empty((k, f, c), dy.dtype)
    gemm(dcols, cache, view(dkernel, k * f, c), trans_a=True)
    dx = None
    if need_dx:
        dx = view(gemm(dcols, view(kernel, k * f, c)), n, steps, c)
    return dx, dkernel, dbias


@cuda.jit(cache=True)
def _upsample(x, size, backward, y):
    # forward: y[b, t] = x[b, t // size]; backward (x = dy): y[b, t] = sum of x[b, t * size + r]
    n, steps, c = y.shape
    for idx in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        ch = idx % c
        r = idx // c
        t = r % steps
        b = r // steps
        if backward:
            acc = float32(0.0)
            for j in range(size):
                acc += x[b, t * size + j, ch]
            y[b, t, ch] = acc
        else:
            y[b, t, ch] = x[b, t // size, ch]


def upsample1d_forward(x: DeviceArray, size: int) -> DeviceArray:
    """Each step of (n, steps, c) x repeated ``size`` times."""
    n, steps, c = x.shape
    y = empty((n, steps * int(size), c), x.dtype)
    if y.size:
        _upsample[grid1d(y.size)](x, int(size), False, y)
    return y


def upsample1d_backward(dy: DeviceArray, size: int) -> DeviceArray:
    """dL/dx of upsample1d_forward."""
    n, steps, c = dy.shape
    dx = empty((n, steps // int(size), c), dy.dtype)
    if dx.size:
        _upsample[grid1d(dx.size)](dy, int(size), True, dx)
    return dx


@cuda.jit(cache=True)
def _masked_mean(x, mask, y, weights):
    n, steps, c = x.shape
    for idx in range(cuda.grid(1), n * c, cuda.gridsize(1)):
        b = idx // c
        ch = idx - b * c
        count = float32(0.0)
        acc = float32(0.0)
        for t in range(steps):
            if mask[b, t]:
                count += float32(1.0)
                acc += x[b, t, ch]
        y[b, ch] = acc / count  # 0 / 0 for a fully masked row, as Keras
        if ch == 0:
            for t in range(steps):
                weights[b, t] = float32(1.0) / count if mask[b, t] else float32(0.0)


@cuda.jit(cache=True)
def _masked_mean_bwd(weights, dy, dx):
    n, steps, c = dx.shape
    for idx in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        ch = idx % c
        r = idx // c
        t = r % steps
        b = r // steps
        dx[b, t, ch] = weights[b, t] * dy[b, ch]


def masked_mean_forward(x: DeviceArray, mask: DeviceArray) -> tuple[DeviceArray, DeviceArray]:
    """Mean over the steps where ``mask`` is True. Returns (y, per-step weights)."""
    n, steps, c = x.shape
    y = empty((n, c), x.dtype)
    weights = empty((n, steps), x.dtype)
    if y.size:
        _masked_mean[grid1d(n * c)](x, mask, y, weights)
    return y, weights


def masked_mean_backward(cache: DeviceArray, dy: DeviceArray) -> DeviceArray:
    """dL/dx of masked_mean_forward."""
    n, steps = cache.shape
    dx = empty((n, steps, dy.shape[1]), dy.dtype)
    if dx.size:
        _masked_mean_bwd[grid1d(dx.size)](cache, dy, dx)
    return dx
