"""The per-chunk drivers of ``rnn_forward`` / ``rnn_backward``: each runs one chunk of rows
through its whole sequence, as one jitted call (``_sequences.py``) or with a numpy product per
step between the step kernels (``_cells.py``). Which way, and why: the package's docstring."""

from __future__ import annotations

import numpy as np

from ._cache import RNNCache
from ._cells import (
    gru_bstep,
    gru_bstep32,
    gru_step,
    gru_step32,
    lstm_bstep,
    lstm_bstep32,
    lstm_step,
    lstm_step32,
    simple_bstep,
    simple_step,
)
from ._sequences import (
    gru_bseq,
    gru_bseq32,
    gru_seq,
    gru_seq32,
    lstm_bseq,
    lstm_bseq32,
    lstm_seq,
    lstm_seq32,
    simple_bseq,
    simple_seq,
)


def forward_chunk(r: RNNCache, k: int) -> None:
    """Run chunk k's sequence: its input projection (one product over all steps, unless the
    sequence kernel projects blocks of steps itself: ``r.ring``), then one jitted call (small
    chunks, or float32 LSTM / GRU) or a BLAS product per step."""
    if not r.ring:
        nin, g = r.xc.shape[-1], r.xp.shape[-1]
        np.matmul(r.xc[k].reshape(-1, nin), r.kernel, out=r.xp[k].reshape(-1, g))
        if r.xbias.size:
            r.xp[k] += r.xbias
    # the cell's settings, as every step and sequence kernel takes them (_cells.py)
    cfg = (r.rmask[k] if r.has_rd else r.rmask, r.has_rd, r.act, r.ract, r.exact, r.one)
    if r.fast:
        (_fast_gru_chunk if r.cell == "gru" else _fast_lstm_chunk)(r, k, cfg)
    elif r.cell == "lstm":
        _lstm_chunk(r, k, cfg)
    elif r.cell == "gru":
        _gru_chunk(r, k, cfg)
    else:
        _simple_chunk(r, k, cfg)


def _projection(r: RNNCache, k: int) -> tuple:
    """The ``proj`` argument of the ``*_seq32`` kernels for chunk k (``_project_block``)."""
    return (r.ring > 0, r.xc[k], r.kernel, r.xbias)


def _fast_gru_chunk(r: RNNCache, k: int, cfg: tuple) -> None:
    steps, nb = r.mask.shape[1:3]
    u = r.rk.shape[0]
    rk, rb, full, store_h = r.rk, r.rb, r.full, r.store_h
    z = np.empty((nb, 3 * u), r.xp.dtype)
    gk, xk, hk, hmk, mk, hsk = r.gates[k], r.xp[k], r.h[k], r.hm[k], r.mask[k], r.hst[k]
    if r.fused:
        gru_seq32(z, xk, rk, hk, rb, hmk, gk, mk, cfg, hsk, r.gemm, _projection(r, k))
        return
    for s in range(steps):
        if s:
            np.matmul(hmk, rk, out=z)
        else:
            z[:] = 0  # h is zero before the first step
        i = s if full else 0
        gru_step32(z, xk[s], hk, rb, hmk, gk[i], mk[s], cfg, hsk[s if store_h else 0])


def _fast_lstm_chunk(r: RNNCache, k: int, cfg: tuple) -> None:
    steps = r.mask.shape[1]
    rk, full, store_h = r.rk, r.full, r.store_h
    gk, xk, hk, ck, hmk = r.gates[k], r.xp[k], r.h[k], r.c[k], r.hm[k]
    mk, hsk, csk = r.mask[k], r.hst[k], r.cst[k]
    if r.fused:
        lstm_seq32(gk, xk, rk, hk, ck, hmk, mk, cfg, hsk, csk, r.gemm, _projection(r, k))
        return
    for s in range(steps):
        i = s if full else 0
        if s:
            np.matmul(hmk, rk, out=gk[i])
        else:
            gk[i] = 0  # h is zero before the first step
        lstm_step32(gk[i], xk[s], hk, ck, hmk, mk[s], cfg, hsk[s if store_h else 0], csk[i])


def _lstm_chunk(r: RNNCache, k: int, cfg: tuple) -> None:
    steps, nb = r.mask.shape[1:3]
    u = r.rk.shape[0]
    xp, rk, m, h, c, hm, hst, cst, gates = r.xp, r.rk, r.mask, r.h, r.c, r.hm, r.hst, r.cst, r.gates
    tmp = np.empty((nb, 1, u), xp.dtype)
    if r.fused:
        lstm_seq(gates[k], xp[k], rk, h[k], c[k], hm[k], tmp, m[k], cfg, hst[k], cst[k])
        return
    g4 = gates[k].reshape(len(gates[k]), nb, 4, u)
    x4 = xp[k].reshape(steps, nb, 4, u)
    for s in range(steps):
        i = s if r.full else 0
        if s:
            np.matmul(hm[k], rk, out=gates[k, i])
        else:
            gates[k, i] = 0  # h is zero before the first step
        hs = hst[k, s if r.store_h else 0]
        lstm_step(g4[i], x4[s], h[k], c[k], hm[k], tmp, m[k, s], cfg, hs, cst[k, i])


def _gru_chunk(r: RNNCache, k: int, cfg: tuple) -> None:
    steps, nb = r.mask.shape[1:3]
    u = r.rk.shape[0]
    xp, rk, rb, m, h, hm, hst, gates = r.xp, r.rk, r.rb, r.mask, r.h, r.hm, r.hst, r.gates
    z = np.zeros((nb, 3 * u), xp.dtype)
    if r.fused:
        gru_seq(z, xp[k], rk, h[k], rb, hm[k], gates[k], m[k], cfg, hst[k])
        return
    g4 = gates[k].reshape(len(gates[k]), nb, 4, u)
    x4 = xp[k].reshape(steps, nb, 3, u)
    z3 = z.reshape(nb, 3, u)
    for s in range(steps):
        if s:
            np.matmul(hm[k], rk, out=z)
        gk, hs = g4[s if r.full else 0], hst[k, s if r.store_h else 0]
        gru_step(z3, x4[s], h[k], rb, hm[k], gk, m[k, s], cfg, hs)


def _simple_chunk(r: RNNCache, k: int, cfg: tuple) -> None:
    steps, nb = r.mask.shape[1:3]
    u = r.rk.shape[0]
    xp, rk, m, h, hm, hst = r.xp, r.rk, r.mask, r.h, r.hm, r.hst
    z = np.zeros((nb, u), xp.dtype)
    if r.fused:
        simple_seq(z, xp[k], rk, h[k], hm[k], m[k], cfg, hst[k])
        return
    x3 = xp[k].reshape(steps, nb, 1, u)
    z3 = z.reshape(nb, 1, u)
    for s in range(steps):
        if s:
            np.matmul(hm[k], rk, out=z)
        simple_step(z3, x3[s], h[k], hm[k], m[k, s], cfg, hst[k, s if r.store_h else 0])


def backward_chunk(c, k, rkt, dyt, dxp, drec, exact, one):
    """Backpropagation through time for chunk k (one jitted call or a BLAS product per step)."""
    _, steps, nb, u = c.hst.shape
    dt = c.hst.dtype
    m = c.mask[k]
    cfg = (c.rmask[k] if c.has_rd else c.rmask, c.has_rd, c.act, c.ract, exact, one)
    seq = c.seq
    dh = np.zeros((nb, u), dt)
    dhr = np.zeros((nb, u), dt)
    dd = np.empty((nb, dxp.shape[3] // u, u), dt)
    dy = dyt[k]
    # each cell: (sequence kernel, its arguments), (step kernel, its arguments before the step
    # index), and the gradient that reaches the previous step through the recurrent kernel
    if c.fast and c.cell == "gru":
        dr, dk, gk, hs = drec[k], dxp[k], c.gates[k], c.hst[k]
        fused = gru_bseq32, (dr, dk, rkt, dh, dhr, m, cfg, dy, seq, gk, hs, c.gemm)
        step = gru_bstep32, (dr, dk, dh, dhr, m, cfg, dy, seq, gk, hs)
        recurrent = dr
    elif c.fast:
        dc = np.zeros((nb, u), dt)
        dk, gk, cs = dxp[k], c.gates[k], c.cst[k]
        fused = lstm_bseq32, (dk, rkt, dh, dc, dhr, m, cfg, dy, seq, gk, cs, c.gemm)
        step = lstm_bstep32, (dk, dh, dc, dhr, m, cfg, dy, seq, gk, cs)
        recurrent = dk
    elif c.cell == "lstm":
        dc = np.zeros((nb, u), dt)
        tc = np.empty((nb, 1, u), dt)
        dtc = np.empty((nb, 1, u), dt)
        dk, gk, cs = dxp[k], c.gates[k], c.cst[k]
        fused = lstm_bseq, (dk, rkt, dh, dc, dhr, tc, dtc, dd, m, cfg, dy, seq, gk, cs)
        step = lstm_bstep, (dk, dh, dc, dhr, tc, dtc, dd, m, cfg, dy, seq, gk, cs)
        recurrent = dk
    elif c.cell == "gru":
        dr, dk, gk, hs = drec[k], dxp[k], c.gates[k], c.hst[k]
        fused = gru_bseq, (dr, dk, rkt, dh, dhr, dd, m, cfg, dy, seq, gk, hs)
        step = gru_bstep, (dr, dk, dh, dhr, dd, m, cfg, dy, seq, gk, hs)
        recurrent = dr
    else:
        dk, hs = dxp[k], c.hst[k]
        fused = simple_bseq, (dk, rkt, dh, dhr, dd, m, cfg, dy, seq, hs)
        step = simple_bstep, (dk, dh, dhr, dd, m, cfg, dy, seq, hs)
        recurrent = dk
    if c.fused:
        fused[0](*fused[1])
        return
    kernel, args = step
    for s in range(steps - 1, -1, -1):
        kernel(*args, s)
        if s:
            np.matmul(recurrent[s], rkt, out=dhr)
