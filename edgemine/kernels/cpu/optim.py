"""Fused, in-place optimizer updates (one pass over each parameter)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def sgd_update(p, g, vel, lr, momentum, nesterov):
    p1, g1, v1 = p.reshape(-1), g.reshape(-1), vel.reshape(-1)
    if momentum == 0.0:
        for i in range(p1.size):
            p1[i] -= lr * g1[i]
        return
    for i in range(p1.size):
        v = momentum * v1[i] - lr * g1[i]
        v1[i] = v
        if nesterov:
            p1[i] += momentum * v - lr * g1[i]
        else:
            p1[i] += v


@njit(cache=True)
def adam_update(p, g, m, v, lr_t, beta1, beta2, eps):
    p1, g1, m1, v1 = p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
    for i in range(p1.size):
        gi = g1[i]
        mi = beta1 * m1[i] + (1.0 - beta1) * gi
        vi = beta2 * v1[i] + (1.0 - beta2) * gi * gi
        m1[i] = mi
        v1[i] = vi
        p1[i] -= lr_t * mi / (np.sqrt(vi) + eps)


@njit(cache=True, parallel=True)
def _adam_rows(p, pos, g, m, v, lr_t, beta1, beta2, eps):
    nrow, dim = p.shape
    for r in prange(nrow):
        k = pos[r]
        for j in range(dim):
            gj = g[k, j] if k >= 0 else 0.0
            mi = beta1 * m[r, j] + (1.0 - beta1) * gj
            vi = beta2 * v[r, j] + (1.0 - beta2) * gj * gj
            m[r, j] = mi
            v[r, j] = vi
            p[r, j] -= lr_t * mi / (np.sqrt(vi) + eps)


def adam_update_sparse(p, rows, g, m, v, lr_t, beta1, beta2, eps):
    """Adam on a row-sparse gradient (unique ``rows``, values ``g``) with exactly the dense
    update's result: every row's moments decay, as Keras's Adam does for an Embedding table.
    One pass over the table; no dense gradient is allocated (only a row -> value index)."""
    pos = np.full(p.shape[0], -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    _adam_rows(p, pos, g, m, v, lr_t, beta1, beta2, eps)


@njit(cache=True)
def rmsprop_update(p, g, ms, mg, mom, lr, rho, eps, momentum, centered):
    """Keras 3's RMSprop: step = lr * g / sqrt(ms - mg^2 + eps) (mg only when centered)."""
    p1, g1, s1, c1, o1 = (
        p.reshape(-1),
        g.reshape(-1),
        ms.reshape(-1),
        mg.reshape(-1),
        mom.reshape(-1),
    )
    for i in range(p1.size):
        gi = g1[i]
        s = rho * s1[i] + (1.0 - rho) * gi * gi
        s1[i] = s
        denom = s + eps
        if centered:
            c = rho * c1[i] + (1.0 - rho) * gi
            c1[i] = c
            denom -= c * c
        step = lr * gi / np.sqrt(denom)
        if momentum > 0.0:
            o = momentum * o1[i] + step
            o1[i] = o
            p1[i] -= o
        else:
            p1[i] -= step
