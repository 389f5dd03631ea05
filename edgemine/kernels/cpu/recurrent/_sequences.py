"""Whole-sequence kernels: one jitted call runs every time step of a chunk of rows
(``<cell>_seq`` / ``<cell>_bseq``; the float32 LSTM and GRU ``*_seq32`` call OpenBLAS's sgemm per
step), so that no Python runs between steps. See the package's docstring.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..blas import NO_TRANS, sgemm
from ._cells import (
    JIT_OPTIONS,
    active_rows,
    gru_bstep,
    gru_bstep32,
    gru_step,
    gru_step32,
    lstm_bstep,
    lstm_bstep32,
    lstm_step,
    lstm_step32,
    mm_acc,
    simple_bstep,
    simple_step,
)

# ----------------------------------------------------------------------------- whole sequences
# For small batches one jitted call runs the whole sequence: the same step functions with the
# hand-written product in between, so there is no Python call per step. Arrays are time-major
# (T, B, ...) as in ``rnn_forward`` / ``rnn_backward``.


@njit(**JIT_OPTIONS)
def lstm_seq(gates, xp, rk, h, c, hm, tmp, mask, cfg, hst, cst):
    steps, nb, _ = gates.shape
    u = h.shape[1]
    idx = np.empty(nb, np.int64)
    for s in range(steps):
        zs = gates[s]
        zs[:] = 0
        n = active_rows(mask[s], idx)
        mm_acc(idx, n, hm, rk, zs)
        lstm_step(
            zs.reshape(nb, 4, u),
            xp[s].reshape(nb, 4, u),
            h,
            c,
            hm,
            tmp,
            mask[s],
            cfg,
            hst[s],
            cst[s],
        )


@njit(**JIT_OPTIONS)
def lstm_bseq(dxp, rkt, dh, dc, dhr, tc, dtc, dd, mask, cfg, dyt, seq, gates, cst):
    steps, nb, _ = dxp.shape
    idx = np.empty(nb, np.int64)
    for s in range(steps - 1, -1, -1):
        lstm_bstep(dxp, dh, dc, dhr, tc, dtc, dd, mask, cfg, dyt, seq, gates, cst, s)
        dhr[:] = 0
        n = active_rows(mask[s], idx)
        mm_acc(idx, n, dxp[s], rkt, dhr)


@njit(**JIT_OPTIONS)
def gru_seq(z, xp, rk, h, rb, hm, gates, mask, cfg, hst):
    steps, nb, _ = gates.shape
    u = h.shape[1]
    idx = np.empty(nb, np.int64)
    for s in range(steps):
        z[:] = 0
        n = active_rows(mask[s], idx)
        mm_acc(idx, n, hm, rk, z)
        gru_step(
            z.reshape(nb, 3, u),
            xp[s].reshape(nb, 3, u),
            h,
            rb,
            hm,
            gates[s].reshape(nb, 4, u),
            mask[s],
            cfg,
            hst[s],
        )


@njit(**JIT_OPTIONS)
def gru_bseq(drec, dxp, rkt, dh, dhr, dd, mask, cfg, dyt, seq, gates, hst):
    steps, nb, _ = dxp.shape
    idx = np.empty(nb, np.int64)
    for s in range(steps - 1, -1, -1):
        gru_bstep(drec, dxp, dh, dhr, dd, mask, cfg, dyt, seq, gates, hst, s)
        dhr[:] = 0
        n = active_rows(mask[s], idx)
        mm_acc(idx, n, drec[s], rkt, dhr)


@njit(**JIT_OPTIONS)
def simple_seq(z, xp, rk, h, hm, mask, cfg, hst):
    steps, nb, u = hst.shape
    idx = np.empty(nb, np.int64)
    for s in range(steps):
        z[:] = 0
        n = active_rows(mask[s], idx)
        mm_acc(idx, n, hm, rk, z)
        simple_step(z.reshape(nb, 1, u), xp[s].reshape(nb, 1, u), h, hm, mask[s], cfg, hst[s])


@njit(**JIT_OPTIONS)
def simple_bseq(dxp, rkt, dh, dhr, dd, mask, cfg, dyt, seq, hst):
    steps, nb, u = dxp.shape
    idx = np.empty(nb, np.int64)
    for s in range(steps - 1, -1, -1):
        simple_bstep(dxp, dh, dhr, dd, mask, cfg, dyt, seq, hst, s)
        dhr[:] = 0
        n = active_rows(mask[s], idx)
        mm_acc(idx, n, dxp[s], rkt, dhr)


@njit(**JIT_OPTIONS)
def _recurrent_product(gemm, a, b, out, ms, idx):
    """out = a @ b for one time step: OpenBLAS's sgemm at ``gemm`` (blas.SGEMM), or with 0 the
    loop product over the rows of unmasked samples only (the other rows are zeroed: callers
    never read them, or a's rows are zero there)."""
    if gemm:
        m, k = a.shape
        n = b.shape[1]
        sgemm(gemm, NO_TRANS, NO_TRANS, m, n, k, np.float32(1), a, k, b, n, np.float32(0), out, n)
        return
    out[:] = 0
    mm_acc(idx, active_rows(ms, idx), a, b, out)


@njit(**JIT_OPTIONS)
def _project_block(gemm, proj, xp, s):
    """With ``proj = (True, x, kernel, bias)`` and a ring ``xp`` of R steps: at every R-th step
    s, ``xp[:r] = x[s : s + r] @ kernel + bias`` (sgemm at ``gemm``) for the next r <= R steps.
    With ``proj[0]`` False, xp already holds every step's projection."""
    project, x, kernel, bias = proj
    ring = xp.shape[0]
    if not project or s % ring:
        return
    tb = min(ring, x.shape[0] - s)
    rows, nin, g = x.shape[1], x.shape[2], kernel.shape[1]
    one, zero = np.float32(1), np.float32(0)
    sgemm(gemm, NO_TRANS, NO_TRANS, tb * rows, g, nin, one, x[s:], nin, kernel, g, zero, xp, g)
    if bias.shape[0]:
        for t in range(tb):
            for r in range(rows):
                row = xp[t, r]
                for j in range(g):
                    row[j] += bias[j]


@njit(**JIT_OPTIONS)
def lstm_seq32(gates, xp, rk, h, c, hm, mask, cfg, hst, cst, gemm, proj):
    """``lstm_seq`` for float32, tanh and sigmoid; ``gemm`` is OpenBLAS's sgemm (blas.SGEMM),
    or 0 for the loop product. A cache with one time step (inference) is reused every step.
    ``proj``: see ``_project_block`` (the input projection in blocks of steps, so that it stays
    in cache between the product that writes it and the step that reads it)."""
    idx = np.empty(h.shape[0], np.int64)
    ng, nh, nc, nx = gates.shape[0], hst.shape[0], cst.shape[0], xp.shape[0]
    for s in range(mask.shape[0]):
        zs = gates[s % ng]
        _project_block(gemm, proj, xp, s)
        _recurrent_product(gemm, hm, rk, zs, mask[s], idx)
        lstm_step32(zs, xp[s % nx], h, c, hm, mask[s], cfg, hst[s % nh], cst[s % nc])


@njit(**JIT_OPTIONS)
def lstm_bseq32(dxp, rkt, dh, dc, dhr, mask, cfg, dyt, seq, gates, cst, gemm):
    """``lstm_bseq`` for float32, tanh and sigmoid (``gemm`` as in ``lstm_seq32``)."""
    steps = dxp.shape[0]
    idx = np.empty(dh.shape[0], np.int64)
    for s in range(steps - 1, -1, -1):
        lstm_bstep32(dxp, dh, dc, dhr, mask, cfg, dyt, seq, gates, cst, s)
        if s:
            _recurrent_product(gemm, dxp[s], rkt, dhr, mask[s], idx)
        else:
            dhr[:] = 0


@njit(**JIT_OPTIONS)
def gru_seq32(z, xp, rk, h, rb, hm, gates, mask, cfg, hst, gemm, proj):
    """``gru_seq`` for float32, tanh and sigmoid (``gemm``, ``proj`` and one-step caches as in
    ``lstm_seq32``)."""
    idx = np.empty(h.shape[0], np.int64)
    ng, nh, nx = gates.shape[0], hst.shape[0], xp.shape[0]
    for s in range(mask.shape[0]):
        _project_block(gemm, proj, xp, s)
        _recurrent_product(gemm, hm, rk, z, mask[s], idx)
        gru_step32(z, xp[s % nx], h, rb, hm, gates[s % ng], mask[s], cfg, hst[s % nh])


@njit(**JIT_OPTIONS)
def gru_bseq32(drec, dxp, rkt, dh, dhr, mask, cfg, dyt, seq, gates, hst, gemm):
    """``gru_bseq`` for float32, tanh and sigmoid (``gemm`` as in ``lstm_seq32``)."""
    steps = dxp.shape[0]
    idx = np.empty(dh.shape[0], np.int64)
    for s in range(steps - 1, -1, -1):
        gru_bstep32(drec, dxp, dh, dhr, mask, cfg, dyt, seq, gates, hst, s)
        if s:
            _recurrent_product(gemm, drec[s], rkt, dhr, mask[s], idx)
        else:
            dhr[:] = 0
