"""LayerNormalization: each row (a sample's normalised axes, flattened) gets its own mean and
variance, so one parallel loop over rows does all of it; the per-column gamma and beta
gradients are sums over rows (one BLAS product each, as for Dense's bias)."""

from __future__ import annotations

import numpy as np
from numba import prange

from .._shared import gradient_out
from ._jit import dual
from .activations import column_sums


@dual
def _ln_forward(x, gamma, has_gamma, beta, has_beta, eps, y, xhat, inv_std):
    rows, cols = x.shape
    for r in prange(rows):
        s = 0.0  # float64 sums: two passes, no cancellation
        for c in range(cols):
            s += x[r, c]
        mean = s / cols
        ss = 0.0
        for c in range(cols):
            d = x[r, c] - mean
            ss += d * d
        inv = 1.0 / np.sqrt(ss / cols + eps)
        inv_std[r] = inv
        for c in range(cols):
            h = (x[r, c] - mean) * inv
            xhat[r, c] = h
            v = h * gamma[c] if has_gamma else h
            y[r, c] = v + beta[c] if has_beta else v


@dual
def _ln_backward(xhat, inv_std, gamma, has_gamma, dy, dx):
    rows, cols = dy.shape
    for r in prange(rows):
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


def layernorm_forward(x, gamma, beta, cols: int, epsilon: float):
    """Normalise each run of ``cols`` trailing values of x (biased variance, Keras's), then
    scale by gamma and shift by beta (either None). Returns (y, xhat, inv_std)."""
    x2 = np.ascontiguousarray(x).reshape(-1, cols)
    y = np.empty_like(x2)
    xhat = np.empty_like(x2)
    inv_std = np.empty(x2.shape[0], x2.dtype)
    stub = x2.reshape(-1)[:1]
    _ln_forward(
        x2.size,
        x2,
        stub if gamma is None else gamma.reshape(-1),
        gamma is not None,
        stub if beta is None else beta.reshape(-1),
        beta is not None,
        float(epsilon),
        y,
        xhat,
        inv_std,
    )
    return y.reshape(x.shape), xhat, inv_std


def layernorm_backward(xhat, inv_std, gamma, dy, out=None):
    """Returns (dx, dgamma or None, dbeta): gradients of :func:`layernorm_forward`. ``out``:
    None, or (dgamma, dbeta) arrays (either None) that the gradients are written into."""
    dy2 = np.ascontiguousarray(dy).reshape(xhat.shape)
    shape = tuple(gamma.shape) if gamma is not None else (xhat.shape[1],)
    dgamma = None
    if gamma is not None:
        dg_out = gradient_out(out, 0)
        dgamma = column_sums(dy2 * xhat, out=None if dg_out is None else dg_out.reshape(-1))
        dgamma = dgamma.reshape(shape) if dg_out is None else dg_out
    db_out = gradient_out(out, 1)
    dbeta = column_sums(dy2, out=None if db_out is None else db_out.reshape(-1))
    dbeta = dbeta.reshape(shape) if db_out is None else db_out
    dx = np.empty_like(dy2)
    stub = dy2.reshape(-1)[:1]
    g = stub if gamma is None else gamma.reshape(-1)
    _ln_backward(dy2.size, xhat, inv_std, g, gamma is not None, dy2, dx)
    return dx.reshape(dy.shape), dgamma, dbeta
