"""Loss values and gradients on device arrays, with the CPU backend's conventions (losses.py
there): Keras's epsilon clipping, mean over the batch (and over time for a cross-entropy on a
(batch, time, classes) output), and the fused softmax / sigmoid gradients.

Cross-entropies run one thread per row of class scores (rows are short); binary cross-entropy
and MSE run one thread per sample for the values and one per element for the gradients. The
per-sample losses stay on the device; the model reads them once per batch with ``to_numpy``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from ._device import DeviceArray, act, as2d, empty, flat, grid1d, row_max_and_expsum, view

EPSILON = np.float32(1e-7)  # Keras's backend epsilon
ONE_M_EPS = np.float32(1.0 - 1e-7)

_CE = {"categorical_crossentropy": 0, "sparse_categorical_crossentropy": 1}
_FUSE = {None: 0, "softmax": 1, "sigmoid": 2}


@cuda.jit(device=True)
def _target(t, sparse, r, c):
    if sparse:
        return float32(1.0) if int(t[r, 0]) == c else float32(0.0)
    return float32(t[r, c])


@cuda.jit(device=True)
def _ce_row_loss(z, t, sparse, logits, eps, one_m_eps, r):
    """Cross-entropy of row r."""
    cols = z.shape[1]
    acc = float32(0.0)
    if logits:
        mx, s = row_max_and_expsum(z, r, cols)
        lse = math.log(s)
        for c in range(cols):
            tc = _target(t, sparse, r, c)
            if tc != float32(0.0):
                acc -= tc * (z[r, c] - mx - lse)
    elif sparse:
        p = z[r, int(t[r, 0])]
        acc = -math.log(min(max(p, eps), one_m_eps))
    else:
        s = float32(0.0)
        for c in range(cols):
            s += z[r, c]
        for c in range(cols):
            tc = _target(t, sparse, r, c)
            p = min(max(z[r, c] / s, eps), one_m_eps)
            acc -= tc * math.log(p)
    return acc


@cuda.jit(device=True)
def _ce_row_gradient(z, t, sparse, logits, fused, inv_n, eps, one_m_eps, g, r):
    """Row r of the batch-mean cross-entropy's gradient."""
    cols = z.shape[1]
    tsum = float32(0.0)
    for c in range(cols):
        tsum += _target(t, sparse, r, c)
    if logits:
        mx, s = row_max_and_expsum(z, r, cols)
        for c in range(cols):
            p = math.exp(z[r, c] - mx) / s
            g[r, c] = (p * tsum - _target(t, sparse, r, c)) * inv_n
    elif fused:
        for c in range(cols):
            g[r, c] = (z[r, c] * tsum - _target(t, sparse, r, c)) * inv_n
    elif sparse:  # Keras clips but does not renormalise
        for c in range(cols):
            p = z[r, c]
            dp = float32(0.0)
            if p > eps and p < one_m_eps:
                dp = -_target(t, sparse, r, c) / p
            g[r, c] = dp * inv_n
    else:
        s = float32(0.0)
        for c in range(cols):
            s += z[r, c]
        dot = float32(0.0)
        for c in range(cols):  # dp = -t / p inside the clip, else 0; g[r] holds dp
            p = z[r, c] / s
            dp = float32(0.0)
            if p > eps and p < one_m_eps:
                dp = -_target(t, sparse, r, c) / p
            g[r, c] = dp
            dot += dp * p
        for c in range(cols):  # through the normalisation p = y / sum(y)
            g[r, c] = (g[r, c] - dot) / s * inv_n


@cuda.jit(cache=True)
def _ce_forward(z, t, sparse, logits, eps, one_m_eps, out):
    for r in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        out[r] = _ce_row_loss(z, t, sparse, logits, eps, one_m_eps, r)


@cuda.jit(cache=True)
def _ce_step(z, t, sparse, logits, fused, softmax_first, inv_n, eps, one_m_eps, out, g):
    """A training step's cross-entropy in one launch: (the softmax of z, in place, as
    activations._softmax_rows computes it), the per-sample losses and the gradient."""
    cols = z.shape[1]
    for r in range(cuda.grid(1), z.shape[0], cuda.gridsize(1)):
        if softmax_first:
            mx, s = row_max_and_expsum(z, r, cols)
            for c in range(cols):
                z[r, c] = math.exp(z[r, c] - mx) / s
        out[r] = _ce_row_loss(z, t, sparse, logits, eps, one_m_eps, r)
        _ce_row_gradient(z, t, sparse, logits, fused, inv_n, eps, one_m_eps, g, r)


@cuda.jit(cache=True)
def _per_sample(z, t, is_mse, logits, sigmoid_first, eps, one_m_eps, out):
    n, m = z.shape
    for r in range(cuda.grid(1), n, cuda.gridsize(1)):
        acc = float32(0.0)
        for c in range(m):
            v = z[r, c]
            if sigmoid_first:  # the fused sigmoid, in place (as the GEMM epilogue computes it)
                v = act(v, 2)
                z[r, c] = v
            tc = float32(t[r, c])
            if is_mse:
                d = v - tc
                acc += d * d
            elif logits:
                acc += max(v, float32(0.0)) - v * tc + math.log1p(math.exp(-abs(v)))
            else:
                p = min(max(v, eps), one_m_eps)
                acc -= tc * math.log(p) + (float32(1.0) - tc) * math.log(float32(1.0) - p)
        out[r] = acc / float32(m)


@cuda.jit(cache=True)
def _elementwise_gradient(z, t, kind, scale, eps, one_m_eps, g):
    # kind 0: mse; 1: binary from probabilities; 2: binary fused/probabilities; 3: from logits
    for i in range(cuda.grid(1), z.size, cuda.gridsize(1)):
        v = z[i]
        tc = float32(t[i])
        if kind == 0:
            g[i] = float32(2.0) * (v - tc) * scale
        elif kind == 1:
            if v > eps and v < one_m_eps:
                g[i] = (v - tc) / (v * (float32(1.0) - v)) * scale
            else:
                g[i] = float32(0.0)
        elif kind == 2:
            g[i] = (v - tc) * scale
        else:
            p = float32(0.5) * (float32(1.0) + math.tanh(float32(0.5) * v))
            g[i] = (p - tc) * scale


def _rows_of(y_pred, y_true, sparse: bool):
    z = as2d(y_pred)
    t = view(y_true, z.shape[0], 1) if sparse else as2d(y_true)
    return z, t


def loss_forward(
    name: str, y_pred: DeviceArray, y_true: DeviceArray, from_logits: bool = False
) -> DeviceArray:
    """Per-sample losses as a device array (shape y_pred.shape[:-1] for the cross-entropies,
    (batch,) otherwise)."""
    return _losses(name, y_pred, y_true, from_logits, None, False)


def loss_and_gradient(
    name: str,
    y_pred: DeviceArray,
    y_true: DeviceArray,
    from_logits: bool = False,
    fused_activation: str | None = None,
    apply_activation: bool = False,
) -> tuple[DeviceArray, DeviceArray]:
    """(per-sample losses, gradient of the batch-mean loss), as the CPU backend's op: the
    gradient is with respect to the fused activation's input, or the logits, where that says
    so; with ``apply_activation`` y_pred holds the fused activation's input and becomes its
    output, in place. A cross-entropy takes one launch (softmax, losses and gradient)."""
    if apply_activation and fused_activation not in ("softmax", "sigmoid"):
        raise ValueError(f"apply_activation needs a fused activation, got {fused_activation!r}")
    n = y_pred.shape[0]
    g = empty(y_pred.shape, y_pred.dtype)
    per = _losses(name, y_pred, y_true, from_logits, fused_activation, apply_activation, g)
    if y_pred.size == 0 or name in _CE:
        return per, g
    m = y_pred.size // n
    scale = np.float32(1.0 / (n * m))
    if name == "mean_squared_error":
        kind = 0
    elif from_logits:
        kind = 3
    elif fused_activation == "sigmoid":
        kind = 2
    else:
        kind = 1
    _elementwise_gradient[grid1d(y_pred.size)](
        flat(y_pred),
        flat(y_true),
        kind,
        scale,
        EPSILON,
        ONE_M_EPS,
        flat(g),
    )
    return per, g


def _losses(name, y_pred, y_true, from_logits, fused, activate, g=None) -> DeviceArray:
    """Per-sample losses; with ``g``, a cross-entropy's gradient too (one launch), and with
    ``activate`` the fused activation applied to y_pred first, in place."""
    if name in _CE:
        sparse = _CE[name] == 1
        z, t = _rows_of(y_pred, y_true, sparse)
        out = empty((z.shape[0],))
        if z.size and g is None:
            _ce_forward[grid1d(z.shape[0])](
                z, t, sparse, bool(from_logits), EPSILON, ONE_M_EPS, out
            )
        elif z.size:
            _ce_step[grid1d(z.shape[0])](
                z,
                t,
                sparse,
                bool(from_logits),
                fused == "softmax",
                bool(activate),
                np.float32(1.0 / z.shape[0]),  # mean over every (sample, step) row
                EPSILON,
                ONE_M_EPS,
                out,
                as2d(g),
            )
        return view(out, *y_pred.shape[:-1]) if y_pred.ndim > 2 else out
    if name in ("binary_crossentropy", "mean_squared_error"):
        n = y_pred.shape[0]
        z = view(y_pred, n, y_pred.size // n)
        t = view(y_true, n, y_true.size // n)
        out = empty((n,))
        if n:
            mse = name == "mean_squared_error"
            _per_sample[grid1d(n)](
                z, t, mse, bool(from_logits), bool(activate), EPSILON, ONE_M_EPS, out
            )
        return out
    raise ValueError(f"unknown loss {name!r}")
