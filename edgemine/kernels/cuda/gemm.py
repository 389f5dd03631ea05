"""Matrix products on the GPU: one tiled shared-memory SGEMM kernel with a fused epilogue, and
deterministic column sums (bias gradients, batch statistics).

Why our own kernel and not cuBLAS: numba-cuda ships no BLAS, and the maintained ways to reach
cuBLAS from Python (CuPy, nvmath-python) each add a 100+ MB dependency to an engine whose CUDA
extra is numba-cuda alone. The shapes here are small (a CNN's im2col matrices, 4u-wide LSTM
gates), where launch count matters more than peak FLOP/s, and our kernel fuses what cuBLAS would
need extra launches for: bias + activation in the epilogue, transposed operands read in place, and
split-K with a fixed-order (reproducible) reduction. Everything goes through :func:`gemm`, so a
cuBLAS product can replace it in this one function: wrap the operands with
``cupy.asarray(devarray)`` (zero-copy through ``__cuda_array_interface__``), call
``cupy.matmul``, then apply the epilogue with :func:`bias_act_inplace`.

Kernel: each block computes a BM x BN tile of C from BK-deep slices of A and B staged in shared
memory; each thread keeps a TM x TN register tile, its rows/columns strided by the thread grid so
that shared-memory reads are conflict-free. Operand loads are coalesced along whichever axis is
contiguous in memory (so A^T and B^T cost nothing extra). When the output has too few tiles to fill
the GPU and K is long (weight gradients: K = batch x H x W), K is split over blockIdx.z into a
scratch buffer and summed in a second kernel in a fixed order.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64

from ._device import (
    ACT_CODES,
    SIM,
    DeviceArray,
    act,
    act_grad,
    dummy,
    empty,
    grid1d,
    last,
    sm_count,
    view,
    workspace,
)

if SIM:  # tiny tiles: the simulator runs one Python thread per CUDA thread
    BM, BN, BK, TM, TN = 16, 16, 8, 8, 8
else:
    BM, BN, BK, TM, TN = 64, 64, 16, 4, 4
TX = BN // TN  # threads along columns
TY = BM // TM  # threads along rows
NT = TX * TY
BMP = BM + 1  # padded shared-memory rows against bank conflicts
BNP = BN + 1


@cuda.jit(device=True)
def _stage(src, k_first, origin, limit, k0, k_end, width, tile, tid):
    """Copy a width x BK slice of an operand into shared ``tile[kk, x]`` (zero outside), x the
    operand's M (or N) index from ``origin``. ``k_first``: src is (K, width-axis), so neighbouring
    threads read along the width axis; else (width-axis, K) and they read along K (coalesced)."""
    for e in range(tid, width * BK, NT):
        if k_first:
            kk = e // width
            x = e - kk * width
        else:
            x = e // BK
            kk = e - x * BK
        g = origin + x
        gk = k0 + kk
        v = float32(0.0)
        if g < limit and gk < k_end:
            v = src[gk, g] if k_first else src[g, gk]
        tile[kk, x] = v


@cuda.jit(cache=True)
def _gemm_kernel(a, b, out, trans_a, trans_b, k_chunk, bias, has_bias, code, accumulate):
    """out[z] (or out[0] with the epilogue when gridDim.z == 1) = op(a) @ op(b) over K-chunk z.
    The sizes come from the arrays' shapes (every launch argument costs host time)."""
    _, m, n = out.shape
    k = a.shape[0] if trans_a else a.shape[1]
    as_ = cuda.shared.array((BK, BMP), float32)
    bs = cuda.shared.array((BK, BNP), float32)
    acc = cuda.local.array((TM, TN), float32)
    ra = cuda.local.array(TM, float32)
    rb = cuda.local.array(TN, float32)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    tid = ty * TX + tx
    row0 = cuda.blockIdx.x * BM  # rows on x: the grid's long axis (up to 2^31 - 1 blocks)
    col0 = cuda.blockIdx.y * BN
    z = cuda.blockIdx.z
    k_begin = z * k_chunk
    k_end = min(k, k_begin + k_chunk)
    for i in range(TM):
        for j in range(TN):
            acc[i, j] = float32(0.0)
    for k0 in range(k_begin, k_end, BK):
        # A[row0:row0+BM, k0:k0+BK] as as_[kk, mm]; a is (K, M) when transposed
        _stage(a, trans_a, row0, m, k0, k_end, BM, as_, tid)
        # B[k0:k0+BK, col0:col0+BN] as bs[kk, nn]; b is (K, N) unless transposed
        _stage(b, not trans_b, col0, n, k0, k_end, BN, bs, tid)
        cuda.syncthreads()
        for kk in range(BK):
            for i in range(TM):
                ra[i] = as_[kk, ty + i * TY]
            for j in range(TN):
                rb[j] = bs[kk, tx + j * TX]
            for i in range(TM):
                for j in range(TN):
                    acc[i, j] += ra[i] * rb[j]
        cuda.syncthreads()
    final = cuda.gridDim.z == 1
    for i in range(TM):
        r = row0 + ty + i * TY
        if r < m:
            for j in range(TN):
                c = col0 + tx + j * TX
                if c < n:
                    v = acc[i, j]
                    if final:
                        if has_bias:
                            v += bias[c]
                        v = act(v, code)
                        if accumulate:
                            v += out[0, r, c]
                    out[z, r, c] = v


@cuda.jit(cache=True)
def _splitk_reduce(part, out, bias, has_bias, code, accumulate):
    s, m, n = part.shape
    for idx in range(cuda.grid(1), m * n, cuda.gridsize(1)):
        r = idx // n
        c = idx - r * n
        v = float32(0.0)
        for z in range(s):
            v += part[z, r, c]
        if has_bias:
            v += bias[c]
        v = act(v, code)
        if accumulate:
            v += out[r, c]
        out[r, c] = v


@cuda.jit(cache=True)
def _bias_act(z, bias, has_bias, code):
    m, n = z.shape
    for idx in range(cuda.grid(1), m * n, cuda.gridsize(1)):
        r = idx // n
        c = idx - r * n
        v = z[r, c]
        if has_bias:
            v += bias[c]
        z[r, c] = act(v, code)


def _split_count(m: int, n: int, k: int) -> int:
    tiles = math.ceil(m / BM) * math.ceil(n / BN)
    want = 2 * sm_count()
    if tiles >= want or k < 8 * BK:
        return 1
    return max(1, min(math.ceil(want / tiles), k // (8 * BK), 64))


def gemm(
    a: DeviceArray,
    b: DeviceArray,
    out: DeviceArray | None = None,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    bias: DeviceArray | None = None,
    activation: str = "linear",
    accumulate: bool = False,
    split_k: int | None = None,
) -> DeviceArray:
    """``out = act(op(a) @ op(b) + bias)`` (``+= ...`` with ``accumulate``) for 2-D C-contiguous
    float32 device arrays; ``op`` transposes when ``trans_a`` / ``trans_b``.

    ``activation`` is 'linear', 'relu', 'sigmoid' or 'tanh' (fused into the epilogue);
    ``split_k`` forces the number of K slices (None: chosen from the shape). Returns ``out``.
    """
    m, ka = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if ka != kb:
        raise ValueError(f"gemm: inner dimensions differ ({ka} vs {kb})")
    k = ka
    code = ACT_CODES[activation]
    if out is None:
        if accumulate:
            raise ValueError("gemm: accumulate needs out")
        out = empty((m, n))
    if m == 0 or n == 0:
        return out
    has_bias = bias is not None
    bias_arr = bias if has_bias else dummy()
    splits = split_k if split_k is not None else _split_count(m, n, k)
    chunk = max(BK, math.ceil(math.ceil(k / max(splits, 1)) / BK) * BK)
    splits = max(1, math.ceil(k / chunk)) if k else 1
    grid = (math.ceil(m / BM), math.ceil(n / BN), splits)
    if splits == 1:
        _gemm_kernel[grid, (TX, TY)](
            a,
            b,
            view(out, 1, m, n),
            trans_a,
            trans_b,
            chunk,
            bias_arr,
            has_bias,
            code,
            accumulate,
        )
        return out
    part = workspace("gemm_splitk", (splits, m, n))
    _gemm_kernel[grid, (TX, TY)](a, b, part, trans_a, trans_b, chunk, bias_arr, False, 0, False)
    _splitk_reduce[grid1d(m * n)](part, out, bias_arr, has_bias, code, accumulate)
    return out


def bias_act_inplace(z: DeviceArray, bias: DeviceArray | None, activation: str) -> DeviceArray:
    """z = act(z + bias) in place for a 2-D device array (the epilogue on its own)."""
    code = ACT_CODES[activation]
    if (code == 0 and bias is None) or z.size == 0:
        return z
    has_bias = bias is not None
    _bias_act[grid1d(z.size)](z, bias if has_bias else dummy(), has_bias, code)
    return z


# ----- column sums (fixed order, float64 accumulation) -----
if SIM:
    CW, RW = 4, 2
else:
    CW, RW = 32, 8


@cuda.jit(device=True)
def _colsum_store(t0, t1, mode, scale, out0, out1, c):
    """Write column c's finished sums: scaled, or (mean, variance) in mode 2."""
    t0 *= scale
    t1 *= scale
    if mode == 2:
        out0[c] = t0
        out1[c] = max(t1 - t0 * t0, 0.0)
    else:
        out0[c] = t0
        if mode == 1:
            out1[c] = t1


@cuda.jit(cache=True)
def _colsum_partial(x, y, mode, rows_per, part, scale, out0, out1):
    """part[:, s, c] = sums over rows [s*rows_per, (s+1)*rows_per) of column c; with a single
    row slice (gridDim.y == 1) the finished sums go straight to out0/out1 (no second launch).

    mode 0: (sum x, 0); mode 1: (sum x, sum x*y); mode 2: (sum x, sum x*x)."""
    _slice_sums(x, y, mode, 0, x, rows_per, part, scale, out0, out1)


@cuda.jit(cache=True)
def _act_grad_colsum_partial(dy, y, code, dz, rows_per, part, out0):
    """As _colsum_partial, for dy = dL/d(output y of activation ``code``): writes dz =
    dL/d(pre-activation) and sums it (a separate kernel, so that the plain sums' launches carry
    no extra arguments: each costs host time in Numba's launcher)."""
    _slice_sums(dy, y, 3, code, dz, rows_per, part, 1.0, out0, out0)


@cuda.jit(device=True)
def _slice_sums(x, y, mode, code, dz, rows_per, part, scale, out0, out1):
    """The body of both column-sum kernels; mode 3: dz = act_grad(y, x, code), summed."""
    sh = cuda.shared.array((2, RW, CW), float64)
    m, n = x.shape
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    c = cuda.blockIdx.x * CW + tx
    s = cuda.blockIdx.y
    r0 = s * rows_per
    r1 = min(m, r0 + rows_per)
    a0 = 0.0
    a1 = 0.0
    if c < n:
        for r in range(r0 + ty, r1, RW):
            if mode == 3:
                g = act_grad(y[r, c], x[r, c], code)
                dz[r, c] = g
                v = float64(g)
            else:
                v = float64(x[r, c])
            a0 += v
            if mode == 1:
                a1 += v * float64(y[r, c])
            elif mode == 2:
                a1 += v * v
    sh[0, ty, tx] = a0
    sh[1, ty, tx] = a1
    cuda.syncthreads()
    if ty == 0 and c < n:
        t0 = 0.0
        t1 = 0.0
        for q in range(RW):
            t0 += sh[0, q, tx]
            t1 += sh[1, q, tx]
        if cuda.gridDim.y == 1:
            _colsum_store(t0, t1, mode, scale, out0, out1, c)
        else:
            part[0, s, c] = t0
            part[1, s, c] = t1


@cuda.jit(cache=True)
def _colsum_final(part, mode, scale, out0, out1):
    _, s, n = part.shape
    for c in range(cuda.grid(1), n, cuda.gridsize(1)):
        t0 = 0.0
        t1 = 0.0
        for z in range(s):
            t0 += part[0, z, c]
            t1 += part[1, z, c]
        _colsum_store(t0, t1, mode, scale, out0, out1, c)


def column_sums(
    x2d: DeviceArray,
    y2d: DeviceArray | None = None,
    mode: int = 0,
    scale: float = 1.0,
    out: DeviceArray | None = None,
    out1: DeviceArray | None = None,
) -> DeviceArray | tuple[DeviceArray, DeviceArray]:
    """Fixed-order sums over the rows of a 2-D float32 device array, accumulated in float64.

    mode 0: ``x.sum(0)``; mode 1: ``(x.sum(0), (x*y).sum(0))``; mode 2: mean and biased
    variance ``(E[x], E[x^2] - E[x]^2)`` with ``scale = 1/rows``. Results are float32, times
    ``scale`` (mode 0 and 1). Returns one array (mode 0) or a pair, written into ``out`` (and
    ``out1``) when given."""
    return _column_sums(x2d, y2d, mode, scale, out, out1, 0, None)


def activation_grad_column_sums(
    activation: str, y2d: DeviceArray, dy2d: DeviceArray, out: DeviceArray | None = None
) -> tuple[DeviceArray, DeviceArray]:
    """``(dz, dz.sum(0))`` for dz = dL/d(pre-activation) of an element-wise activation with
    output y2d and dL/dy = dy2d, in one pass: a layer's activation backward and bias gradient.
    The sum goes into ``out`` when given. dz is scratch, valid until the next call: the layer's
    backward uses it for its two products at once."""
    dz = workspace("act_grad_dz", dy2d.shape, dy2d.dtype)
    return dz, _column_sums(dy2d, y2d, 3, 1.0, out, None, ACT_CODES[activation], dz)


def bias_gradient(
    activation: str, y: DeviceArray | None, dy: DeviceArray, out: DeviceArray | None = None
) -> tuple[DeviceArray, DeviceArray]:
    """(dz, dbias) of a layer whose output is ``activation(z + bias)`` (y; any rank, channels
    last), from dL/dy: dz as a 2-D (rows, channels) array. An element-wise activation's backward
    and the column sums are one kernel."""
    n = last(dy)
    dy2 = view(dy, dy.size // n, n)
    if activation in ACT_CODES and activation != "linear":
        return activation_grad_column_sums(activation, view(y, y.size // n, n), dy2, out)
    if activation != "linear":
        from .activations import activation_backward

        dy2 = view(activation_backward(activation, y, dy), dy.size // n, n)
    return dy2, column_sums(dy2, out=out)


def _column_sums(x2d, y2d, mode, scale, out, out1, code, dz):
    m, n = x2d.shape
    out0 = empty((n,)) if out is None else out
    if mode in (1, 2) and out1 is None:
        out1 = empty((n,))
    cols = math.ceil(n / CW)
    rows_min = 4 * RW
    splits = max(1, min(math.ceil(2 * sm_count() / cols), math.ceil(m / rows_min), 512))
    rows_per = max(1, math.ceil(m / splits))
    splits = max(1, math.ceil(m / rows_per))
    part = workspace("colsum", (2, splits, n), np.float64)
    out1_arr = out1 if out1 is not None else out0
    launch = (cols, splits), (CW, RW)
    if mode == 3:
        _act_grad_colsum_partial[launch](x2d, y2d, code, dz, rows_per, part, out0)
    else:
        y_arr = y2d if y2d is not None else x2d
        _colsum_partial[launch](x2d, y_arr, mode, rows_per, part, float(scale), out0, out1_arr)
    if splits > 1:
        _colsum_final[grid1d(n)](part, mode, float(scale), out0, out1_arr)
    return out0 if mode in (0, 3) else (out0, out1)
