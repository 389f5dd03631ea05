"""Fused, in-place optimizer updates (one pass over each parameter).

The arithmetic is float32 throughout, as Keras's is: the hyper-parameters are cast once in the
Python wrapper, because a Python float is a float64 in Numba and would widen every element's
arithmetic (half the SIMD width, and measured 10x slower than this version). Large parameters
run in parallel; each element's update is independent, so the result does not depend on that.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._jit import dual

_f32 = np.float32


@dual
def _sgd(p1, g1, v1, lr, momentum, nesterov):
    if momentum == 0:
        for i in prange(p1.size):
            p1[i] -= lr * g1[i]
        return
    for i in prange(p1.size):
        v = momentum * v1[i] - lr * g1[i]
        v1[i] = v
        if nesterov:
            p1[i] += momentum * v - lr * g1[i]
        else:
            p1[i] += v


def _update(kernel, arrays, *scalars):
    """Run an element-wise update kernel over the flattened arrays (the parameter first);
    float hyper-parameters as float32 (see the module note), flags as they are."""
    kernel(
        arrays[0].size,
        *(a.reshape(-1) for a in arrays),
        *(x if isinstance(x, bool) else _f32(x) for x in scalars),
    )


@dual
def _scale(p1, factor):
    for i in prange(p1.size):
        p1[i] *= factor


def scale_(p, factor):
    """p *= factor, in place (decoupled weight decay)."""
    _update(_scale, (p,), factor)


def sgd_update(p, g, vel, lr, momentum, nesterov):
    _update(_sgd, (p, g, vel), lr, momentum, bool(nesterov))


@dual
def _adam(p1, g1, m1, v1, lr_t, beta1, beta2, eps):
    one = np.float32(1)
    for i in prange(p1.size):
        gi = g1[i]
        mi = beta1 * m1[i] + (one - beta1) * gi
        vi = beta2 * v1[i] + (one - beta2) * gi * gi
        m1[i] = mi
        v1[i] = vi
        p1[i] -= lr_t * mi / (np.sqrt(vi) + eps)


def adam_update(p, g, m, v, lr_t, beta1, beta2, eps):
    _update(_adam, (p, g, m, v), lr_t, beta1, beta2, eps)


@dual
def _adam_rows(p, pos, g, m, v, lr_t, beta1, beta2, eps):
    # the same expression as _adam, element for element, so the two agree bit for bit
    one = np.float32(1)
    zero = np.float32(0)
    nrow, dim = p.shape
    for r in prange(nrow):
        k = pos[r]
        for j in range(dim):
            gj = g[k, j] if k >= 0 else zero
            mi = beta1 * m[r, j] + (one - beta1) * gj
            vi = beta2 * v[r, j] + (one - beta2) * gj * gj
            m[r, j] = mi
            v[r, j] = vi
            p[r, j] -= lr_t * mi / (np.sqrt(vi) + eps)


def adam_update_sparse(p, rows, g, m, v, lr_t, beta1, beta2, eps):
    """Adam on a row-sparse gradient (unique ``rows``, values ``g``) with exactly the dense
    update's result: every row's moments decay, as Keras's Adam does for an Embedding table.
    One pass over the table; no dense gradient is allocated (only a row -> value index)."""
    pos = np.full(p.shape[0], -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    _adam_rows(p.size, p, pos, g, m, v, _f32(lr_t), _f32(beta1), _f32(beta2), _f32(eps))


@dual
def _rmsprop(p1, g1, s1, c1, o1, lr, rho, eps, momentum, centered):
    one = np.float32(1)
    for i in prange(p1.size):
        gi = g1[i]
        s = rho * s1[i] + (one - rho) * gi * gi
        s1[i] = s
        denom = s + eps
        if centered:
            c = rho * c1[i] + (one - rho) * gi
            c1[i] = c
            denom -= c * c
        step = lr * gi / np.sqrt(denom)
        if momentum > 0:
            o = momentum * o1[i] + step
            o1[i] = o
            p1[i] -= o
        else:
            p1[i] -= step


def rmsprop_update(p, g, ms, mg, mom, lr, rho, eps, momentum, centered):
    """Keras 3's RMSprop: step = lr * g / sqrt(ms - mg^2 + eps) (mg only when centered)."""
    _update(_rmsprop, (p, g, ms, mg, mom), lr, rho, eps, momentum, bool(centered))
