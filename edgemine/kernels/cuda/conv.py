"""Conv2D on NHWC device arrays as im2col + the tiled GEMM (see gemm.py), like the CPU backend.

Forward: one im2col kernel (skipped for 1x1 / stride 1) and one GEMM whose epilogue adds the bias
and applies relu / sigmoid / tanh. Backward: dkernel = cols^T @ dy (split-K GEMM, operands read
transposed in place), dbias = column sums of dy, dcols = dy @ kernel^T, and col2im as a GATHER:
each input pixel sums the column entries that read it, in a fixed order, so no atomics and the
result is reproducible.
"""

from __future__ import annotations

from numba import cuda, float32

from .._shared import conv_geometry, conv_output_size, gradient_out
from ._device import DeviceArray, empty, grid1d, nhwc_index, view, workspace
from .activations import softmax_rows_inplace
from .gemm import bias_gradient, gemm


@cuda.jit(cache=True)
def _im2col(x, kh, kw, sh, sw, pt, pl, oh, ow, cols):
    n, h, w, c = x.shape
    ncol = kh * kw * c
    total = cols.shape[0] * ncol
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        row = idx // ncol
        kidx = idx - row * ncol
        b = row // (oh * ow)
        rem = row - b * (oh * ow)
        i = rem // ow
        j = rem - i * ow
        pq = kidx // c
        ch = kidx - pq * c
        p = pq // kw
        q = pq - p * kw
        yy = i * sh + p - pt
        xx = j * sw + q - pl
        v = float32(0.0)
        if yy >= 0 and yy < h and xx >= 0 and xx < w:
            v = x[b, yy, xx, ch]
        cols[row, kidx] = v


@cuda.jit(device=True)
def _output_of_tap(pos, pad, tap, stride, out):
    """Along one axis: the output position whose window reads input ``pos`` through kernel tap
    ``tap``, or -1 where none does."""
    v = pos + pad - tap
    if v < 0 or v % stride != 0 or v // stride >= out:
        return -1
    return v // stride


@cuda.jit(cache=True)
def _col2im(dcols, kh, kw, sh, sw, pt, pl, oh, ow, dx):
    n, h, w, c = dx.shape
    for idx in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
        b, yy, xx, ch = nhwc_index(idx, h, w, c)
        acc = float32(0.0)
        for p in range(kh):
            i = _output_of_tap(yy, pt, p, sh, oh)
            if i < 0:
                continue
            for q in range(kw):
                j = _output_of_tap(xx, pl, q, sw, ow)
                if j < 0:
                    continue
                acc += dcols[(b * oh + i) * ow + j, (p * kw + q) * c + ch]
        dx[b, yy, xx, ch] = acc


def conv2d_forward(
    x: DeviceArray,
    kernel: DeviceArray,
    bias: DeviceArray | None,
    strides: tuple[int, int],
    padding: str,
    activation: str = "linear",
    keep: bool = True,
    corner: tuple[int, int] | None = None,
) -> tuple[DeviceArray, DeviceArray]:
    """Returns (activation(conv(x) + bias), cols); cols is kept for the backward pass (the
    device keeps it even with ``keep=False``: its memory is not the bottleneck there).
    ``corner``: compute only the output's first (rows, cols), as the CPU backend."""
    n, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    sh, sw = int(strides[0]), int(strides[1])
    oh, ow, pt, pl, cropped = conv_geometry(x.shape, kh, kw, (sh, sw), padding, corner)
    if kh == 1 and kw == 1 and (sh, sw) == (1, 1) and not cropped:
        cols = view(x, n * h * w, c)
    else:
        cols = empty((n * oh * ow, kh * kw * c), x.dtype)
        if cols.size:
            _im2col[grid1d(cols.size)](x, kh, kw, sh, sw, pt, pl, oh, ow, cols)
    fused = activation if activation != "softmax" else "linear"
    y = gemm(cols, view(kernel, kh * kw * c, f), bias=bias, activation=fused)
    if activation == "softmax":
        softmax_rows_inplace(y)
    return view(y, n, oh, ow, f), cols


def conv2d_backward(
    x_shape: tuple,
    cache: DeviceArray,
    kernel: DeviceArray,
    dy: DeviceArray,
    strides: tuple[int, int],
    padding: str,
    need_dx: bool = True,
    activation: str = "linear",
    y: DeviceArray | None = None,
    out: tuple | None = None,
    corner: tuple[int, int] | None = None,
) -> tuple[DeviceArray | None, DeviceArray, DeviceArray]:
    """Returns (dx or None, dkernel, dbias). With ``activation`` and the forward output ``y``,
    ``dy`` is the gradient of the activation's output (as in the CPU backend). ``out``: None, or
    (dkernel, dbias) device arrays (either None) that the weight gradients are written into;
    ``corner``: the forward's."""
    n, h, w, c = (int(d) for d in x_shape)
    kh, kw, _, f = kernel.shape
    sh, sw = int(strides[0]), int(strides[1])
    oh, ow, pt, pl, cropped = conv_geometry(x_shape, kh, kw, (sh, sw), padding, corner)
    dy2, dbias = bias_gradient(activation, y, dy, gradient_out(out, 1))
    dkernel = gradient_out(out, 0)
    if dkernel is None:
        dkernel = empty((kh, kw, c, f), dy.dtype)
    gemm(cache, dy2, view(dkernel, kh * kw * c, f), trans_a=True)
    dx = None
    if need_dx:
        k2 = view(kernel, kh * kw * c, f)
        if kh == 1 and kw == 1 and (sh, sw) == (1, 1) and not cropped:
            dx = view(gemm(dy2, k2, trans_b=True), n, h, w, c)
        else:  # the patch gradients live only until col2im has gathered them: scratch
            dcols = gemm(
                dy2, k2, workspace("conv_dcols", (dy2.shape[0], kh * kw * c)), trans_b=True
            )
            dx = empty((n, h, w, c), dy.dtype)
            if dx.size:
                _col2im[grid1d(dx.size)](dcols, kh, kw, sh, sw, pt, pl, oh, ow, dx)
    return dx, dkernel, dbias


__all__ = ["conv2d_backward", "conv2d_forward", "conv_output_size"]
