"""BatchNormalization over the last axis, the moving-average update, and inverted dropout.

Batch statistics and the gamma/beta gradients are fixed-order column sums in float64
(gemm.column_sums); the normalisation and dx are one element-wise kernel each. The dropout mask is
drawn on the host from edgemine's generator (the same draws as the CPU backend, so a seeded run
matches) and copied as bytes; the kernel turns it into the scaled float mask and applies it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from .._shared import gradient_out
from ._device import DeviceArray, as2d, dummy, empty, flat, grid1d, last, upload, view
from .gemm import column_sums


@cuda.jit(cache=True)
def _bn_fwd(x, gamma, has_gamma, beta, has_beta, mean, var, eps, y, xhat, inv_std):
    m, c = x.shape
    for idx in range(cuda.grid(1), m * c, cuda.gridsize(1)):
        r = idx // c
        k = idx - r * c
        inv = float32(1.0) / math.sqrt(var[k] + eps)
        if r == 0:
            inv_std[k] = inv
        h = (x[r, k] - mean[k]) * inv
        xhat[r, k] = h
        v = h * gamma[k] if has_gamma else h
        if has_beta:
            v += beta[k]
        y[r, k] = v


@cuda.jit(cache=True)
def _bn_bwd(xhat, inv_std, gamma, has_gamma, dy, training, dgamma, dbeta, count, dx):
    m, c = dy.shape
    for idx in range(cuda.grid(1), m * c, cuda.gridsize(1)):
        r = idx // c
        k = idx - r * c
        g = gamma[k] if has_gamma else float32(1.0)
        if training:
            dx[r, k] = (g * inv_std[k] / count) * (
                count * dy[r, k] - dbeta[k] - xhat[r, k] * dgamma[k]
            )
        else:
            dx[r, k] = dy[r, k] * (g * inv_std[k])


@cuda.jit(cache=True)
def _ema(target, new, m, om):
    for i in range(cuda.grid(1), target.size, cuda.gridsize(1)):
        target[i] = target[i] * m + new[i] * om


@cuda.jit(cache=True)
def _dropout(x, keep, scale, y, mask):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        s = scale if keep[i] else float32(0.0)
        mask[i] = s
        y[i] = x[i] * s


def batch_moments(x: DeviceArray) -> tuple[DeviceArray, DeviceArray]:
    """Mean and biased variance over every axis but the last (Keras's batch statistics)."""
    x2 = as2d(x)
    return column_sums(x2, mode=2, scale=1.0 / max(x2.shape[0], 1))


def batchnorm_forward(
    x: DeviceArray,
    gamma: DeviceArray | None,
    beta: DeviceArray | None,
    mean: DeviceArray,
    var: DeviceArray,
    epsilon: float,
) -> tuple[DeviceArray, DeviceArray, DeviceArray]:
    """Normalise over every axis but the last. Returns (y, xhat, inv_std)."""
    c = last(x)
    y = empty(x.shape, x.dtype)
    xhat = empty(x.shape, x.dtype)
    inv_std = empty((c,), x.dtype)
    if x.size:
        _bn_fwd[grid1d(x.size)](
            as2d(x),
            gamma if gamma is not None else dummy(),
            gamma is not None,
            beta if beta is not None else dummy(),
            beta is not None,
            mean,
            var,
            np.float32(epsilon),
            as2d(y),
            as2d(xhat),
            inv_std,
        )
    return y, xhat, inv_std


def batchnorm_backward(
    xhat: DeviceArray,
    inv_std: DeviceArray,
    gamma: DeviceArray | None,
    dy: DeviceArray,
    training: bool,
    out: tuple | None = None,
) -> tuple[DeviceArray, DeviceArray, DeviceArray]:
    """Returns (dx, dgamma, dbeta). In training the statistics depend on the batch. ``out``:
    None, or (dgamma, dbeta) device arrays (either None) that the gradients are written into."""
    dy2 = as2d(dy)
    dbeta, dgamma = column_sums(
        dy2, as2d(xhat), mode=1, out=gradient_out(out, 1), out1=gradient_out(out, 0)
    )
    dx = empty(dy.shape, dy.dtype)
    if dy.size:
        _bn_bwd[grid1d(dy.size)](
            as2d(xhat),
            inv_std,
            gamma if gamma is not None else dummy(),
            gamma is not None,
            dy2,
            bool(training),
            dgamma,
            dbeta,
            np.float32(dy2.shape[0]),
            as2d(dx),
        )
    return dx, dgamma, dbeta


def ema_update(target: DeviceArray, new: DeviceArray, momentum: float) -> None:
    """target = target * momentum + new * (1 - momentum), in place (moving statistics)."""
    if target.size:
        _ema[grid1d(target.size)](
            flat(target), flat(new), np.float32(momentum), np.float32(1.0 - momentum)
        )


def dropout_forward(
    x: DeviceArray, rate: float, rng: np.random.Generator
) -> tuple[DeviceArray, DeviceArray]:
    """Inverted dropout. Returns (y, mask) with mask already scaled by 1 / (1 - rate)."""
    keep = rng.random(tuple(x.shape), dtype=np.float32) >= rate
    keep_dev = upload(keep.reshape(-1).view(np.uint8))
    y = empty(x.shape, x.dtype)
    mask = empty(x.shape, x.dtype)
    if x.size:
        _dropout[grid1d(x.size)](
            flat(x), keep_dev, np.float32(1.0 / (1.0 - rate)), flat(y), flat(mask)
        )
    return y, mask


@cuda.jit(cache=True)
def _ln_fwd(x, gamma, has_gamma, beta, has_beta, eps, y, xhat, inv_std):
    # one thread per row (a sample's normalised values): rows are short feature vectors
    rows, cols = x.shape
    for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
        s = 0.0  # float64 sums, fixed order
        for c in range(cols):
            s += x[r, c]
        mean = s / cols
        ss = 0.0
        for c in range(cols):
            d = x[r, c] - mean
            ss += d * d
        inv = 1.0 / math.sqrt(ss / cols + eps)
        inv_std[r] = inv
        for c in range(cols):
            h = float32((x[r, c] - mean) * inv)
            xhat[r, c] = h
            v = h * gamma[c] if has_gamma else h
            y[r, c] = v + beta[c] if has_beta else v


@cuda.jit(cache=True)
def _ln_bwd(xhat, inv_std, gamma, has_gamma, dy, dx):
    rows, cols = dy.shape
    for r in range(cuda.grid(1), rows, cuda.gridsize(1)):
        a = 0.0
        b = 0.0
        for c in range(cols):
            g = dy[r, c] * gamma[c] if has_gamma else dy[r, c]
            a += g
            b += g * xhat[r, c]
        a /= cols
        b /= cols
        for c in range(cols):
            g = dy[r, c] * gamma[c] if has_gamma else dy[r, c]
            dx[r, c] = inv_std[r] * (g - a - xhat[r, c] * b)


def layernorm_forward(
    x: DeviceArray,
    gamma: DeviceArray | None,
    beta: DeviceArray | None,
    cols: int,
    epsilon: float,
) -> tuple[DeviceArray, DeviceArray, DeviceArray]:
    """Normalise each run of ``cols`` trailing values of x, then scale by gamma and shift by
    beta (either None). Returns (y, xhat, inv_std)."""
    rows = x.size // cols
    y = empty(x.shape, x.dtype)
    xhat = empty((rows, cols), x.dtype)
    inv_std = empty((rows,), x.dtype)
    if x.size:
        _ln_fwd[grid1d(rows)](
            view(x, rows, cols),
            dummy() if gamma is None else flat(gamma),
            gamma is not None,
            dummy() if beta is None else flat(beta),
            beta is not None,
            float(epsilon),
            view(y, rows, cols),
            xhat,
            inv_std,
        )
    return y, xhat, inv_std


def layernorm_backward(
    xhat: DeviceArray,
    inv_std: DeviceArray,
    gamma: DeviceArray | None,
    dy: DeviceArray,
    out: tuple | None = None,
) -> tuple[DeviceArray, DeviceArray | None, DeviceArray]:
    """Returns (dx, dgamma or None, dbeta). ``out``: None, or (dgamma, dbeta) device arrays
    (either None) that the gradients are written into."""
    rows, cols = xhat.shape
    dy2 = view(dy, rows, cols)
    shape = (cols,) if gamma is None else tuple(gamma.shape)
    dg_out, db_out = gradient_out(out, 0), gradient_out(out, 1)
    dbeta, dgamma = column_sums(
        dy2,
        xhat,
        mode=1,
        out=None if db_out is None else flat(db_out),
        out1=None if dg_out is None or gamma is None else flat(dg_out),
    )
    dbeta = view(dbeta, *shape) if db_out is None else db_out
    dgamma = None if gamma is None else (view(dgamma, *shape) if dg_out is None else dg_out)
    dx = empty(dy.shape, dy.dtype)
    if dy.size:
        _ln_bwd[grid1d(rows)](
            xhat,
            inv_std,
            dummy() if gamma is None else flat(gamma),
            gamma is not None,
            dy2,
            view(dx, rows, cols),
        )
    return dx, dgamma, dbeta
