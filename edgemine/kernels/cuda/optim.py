"""Fused, in-place optimizer updates on device arrays: one kernel pass per parameter.

The arithmetic is float64 with float32 storage; the CPU kernels compute in float32, as Keras
does, and the two backends agree to rounding (1e-4 relative in the simulator tests).
The sparse Adam step (Embedding tables) keeps Keras's dense result: every row's moments decay and
every row moves; the touched rows are found through a row -> position table that is stamped with
a step number instead of being cleared.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64

from ._device import DeviceArray, empty, fill, flat, grid1d, upload


@cuda.jit(cache=True)
def _scale(p, factor):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        p[i] = p[i] * factor


def scale_(p: DeviceArray, factor: float) -> None:
    """p *= factor, in place (decoupled weight decay)."""
    if p.size:
        _scale[grid1d(p.size)](flat(p), np.float32(factor))


@cuda.jit(cache=True)
def _sgd(p, g, vel, lr, momentum, nesterov):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = float64(g[i])
        if momentum == 0.0:
            p[i] = p[i] - lr * gi
        else:
            v = momentum * vel[i] - lr * gi
            vel[i] = v
            if nesterov:
                p[i] = p[i] + (momentum * v - lr * gi)
            else:
                p[i] = p[i] + v


@cuda.jit(cache=True)
def _adam(p, g, m, v, lr_t, beta1, beta2, eps):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = float64(g[i])
        mi = beta1 * m[i] + (1.0 - beta1) * gi
        vi = beta2 * v[i] + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - lr_t * mi / (math.sqrt(vi) + eps)


@cuda.jit(cache=True)
def _rmsprop(p, g, ms, mg, mom, lr, rho, eps, momentum, centered):
    for i in range(cuda.grid(1), p.size, cuda.gridsize(1)):
        gi = float64(g[i])
        s = rho * ms[i] + (1.0 - rho) * gi * gi
        ms[i] = s
        denom = s + eps
        if centered:
            c = rho * mg[i] + (1.0 - rho) * gi
            mg[i] = c
            denom -= c * c
        step = lr * gi / math.sqrt(denom)
        if momentum > 0.0:
            o = momentum * mom[i] + step
            mom[i] = o
            p[i] = p[i] - o
        else:
            p[i] = p[i] - step


@cuda.jit(cache=True)
def _stamp_rows(rows, stamp, pos, tick):
    for k in range(cuda.grid(1), rows.size, cuda.gridsize(1)):
        r = rows[k]
        stamp[r] = tick
        pos[r] = k


@cuda.jit(cache=True)
def _adam_sparse(p, g, m, v, stamp, pos, tick, lr_t, beta1, beta2, eps):
    nrow, dim = p.shape
    for idx in range(cuda.grid(1), nrow * dim, cuda.gridsize(1)):
        r = idx // dim
        j = idx - r * dim
        # two roundings to float32, as the CPU kernel's decay-then-add does
        mi = float32(beta1 * m[r, j])
        vi = float32(beta2 * v[r, j])
        if stamp[r] == tick:
            gj = float64(g[pos[r], j])
            mi = float32(mi + (1.0 - beta1) * gj)
            vi = float32(vi + (1.0 - beta2) * gj * gj)
        m[r, j] = mi
        v[r, j] = vi
        p[r, j] = p[r, j] - lr_t * mi / (math.sqrt(float64(vi)) + eps)


@cuda.jit(cache=True)
def _scatter_rows(dense, rows, values):
    k_rows, dim = values.shape
    for idx in range(cuda.grid(1), k_rows * dim, cuda.gridsize(1)):
        k = idx // dim
        j = idx - k * dim
        dense[rows[k], j] = values[k, j]


@cuda.jit(cache=True)
def _clear_rows(dense, rows):
    dim = dense.shape[1]
    for idx in range(cuda.grid(1), rows.size * dim, cuda.gridsize(1)):
        k = idx // dim
        dense[rows[k], idx - k * dim] = float32(0.0)


def _update(kernel, arrays: tuple, *scalars) -> None:
    """Launch an element-wise update kernel over the flattened arrays (the parameter first)."""
    if arrays[0].size:
        kernel[grid1d(arrays[0].size)](*(flat(a) for a in arrays), *scalars)


def sgd_update(
    p: DeviceArray, g: DeviceArray, vel: DeviceArray, lr: float, momentum: float, nesterov: bool
) -> None:
    """SGD with optional (Nesterov) momentum, in place."""
    _update(_sgd, (p, g, vel), float(lr), float(momentum), bool(nesterov))


def adam_update(
    p: DeviceArray,
    g: DeviceArray,
    m: DeviceArray,
    v: DeviceArray,
    lr_t: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    """Adam (Keras's form: lr_t already holds the bias corrections), in place."""
    _update(_adam, (p, g, m, v), float(lr_t), float(beta1), float(beta2), float(eps))


def rmsprop_update(
    p: DeviceArray,
    g: DeviceArray,
    ms: DeviceArray,
    mg: DeviceArray,
    mom: DeviceArray,
    lr: float,
    rho: float,
    eps: float,
    momentum: float,
    centered: bool,
) -> None:
    """Keras 3's RMSprop: step = lr * g / sqrt(ms - mg^2 + eps) (mg only when centered)."""
    scalars = (float(lr), float(rho), float(eps), float(momentum), bool(centered))
    _update(_rmsprop, (p, g, ms, mg, mom), *scalars)


_SPARSE: dict = {}  # rows of a table -> (stamp, pos, last tick)


def adam_update_sparse(
    p: DeviceArray,
    rows: DeviceArray | np.ndarray,
    g: DeviceArray,
    m: DeviceArray,
    v: DeviceArray,
    lr_t: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    """Adam on a row-sparse gradient (unique ``rows``, values ``g``) with the dense update's
    result: every row's moments decay, as Keras's Adam does for an Embedding table."""
    nrow = p.shape[0]
    state = _SPARSE.get(nrow)
    if state is None:
        stamp = empty((nrow,), np.int64)
        fill(stamp, -1)
        state = _SPARSE[nrow] = [stamp, empty((nrow,), np.int32), 0]
    state[2] += 1
    stamp, pos, tick = state
    rows = _as_device_rows(rows)
    if rows.size:
        _stamp_rows[grid1d(rows.size)](rows, stamp, pos, tick)
    if p.size:
        _adam_sparse[grid1d(p.size)](
            p, g, m, v, stamp, pos, tick, float(lr_t), float(beta1), float(beta2), float(eps)
        )


def _as_device_rows(rows):
    if hasattr(rows, "copy_to_host"):
        return rows
    return upload(np.ascontiguousarray(rows, dtype=np.int32))


def scatter_rows(dense: DeviceArray, rows: DeviceArray | np.ndarray, values: DeviceArray) -> None:
    """dense[rows] = values (rows unique)."""
    rows = _as_device_rows(rows)
    if values.size:
        _scatter_rows[grid1d(values.size)](dense, rows, values)


def clear_rows(dense: DeviceArray, rows: DeviceArray | np.ndarray) -> None:
    """dense[rows] = 0."""
    rows = _as_device_rows(rows)
    if rows.size and dense.shape[1]:
        _clear_rows[grid1d(rows.size * dense.shape[1])](dense, rows)
