"""Recurrent layers (LSTM, GRU, SimpleRNN) on the CPU: forward and backpropagation through time.

Layout (Keras's): x is (batch, time, features); a cell's kernel is (in, G) and its recurrent
kernel (units, G) with G = 4u (LSTM gates i, f, c, o), 3u (GRU gates z, r, h) or u (SimpleRNN).

How the work is split (measured on the project's 2-core AVX-512 machine, which other jobs
share, so the numbers are medians of noisy runs):

* The input projection of ALL time steps is ONE BLAS product ``x.reshape(-1, in) @ kernel +
  bias`` per chunk of rows (below); in backward the kernel, recurrent-kernel and input
  gradients are one BLAS product each per chunk.
* Only the recurrence loops over time. Each step's gate math (activations, cell update, caches,
  masking) is one jitted step function (``_<cell>_step`` / ``_<cell>_bstep``).
* float32 LSTMs and GRUs with the default activations, where numpy's OpenBLAS is found
  (``USE_SGEMM``): the batch is split into one chunk of rows per thread (``MAX_THREADS``,
  default numba's thread count) and each thread runs its chunk's whole sequence in ONE jitted
  call (``_lstm_seq32`` / ``_lstm_bseq32``, ``_gru_seq32`` / ``_gru_bseq32``) that calls
  OpenBLAS's sgemm for ``h @ recurrent_kernel`` per step (``blas.py``: no Python runs per
  step). Each thread also does its chunk's input projection and its share of the weight and
  input gradients. OpenBLAS is single-threaded for the whole layer call: after any threaded
  product its worker busy-waits for over 100 ms and takes the second thread's core (measured:
  chunk threads 1.6x slower). Seed LSTM training step: 30-39 ms before, 21-23 ms with this.
  Embedding -> GRU(64, return_sequences) -> GRU(64) -> Dense -> Dense, 100 steps, batch 32:
  median 25 ms before, 16 ms with this and the GRU step kernels below.
* Other cells, activations and float64, from ``STEPWISE_MIN_BATCH`` rows on: ONE thread calls
  numpy's matmul per step from Python between step functions (splitting over two threads lost
  to the spinning worker, as above).
* Smaller batches of those are split into one chunk of rows per thread; each thread runs its
  chunk's whole sequence in ONE jitted call (``_<cell>_seq``) with a hand-vectorised product
  ``h @ recurrent_kernel`` (``_mm_acc``, about 60 % of OpenBLAS's speed), so no Python runs per
  step: 2-3x faster at batch 1.
* float32 LSTMs and GRUs with tanh and sigmoid (the defaults) have their own step kernels
  (``_lstm_step32`` / ``_lstm_bstep32``, ``_gru_step32`` / ``_gru_bstep32``): each row's gate
  math is one fused loop over the units on 1-D row views, which LLVM vectorises; the general
  kernels index 3-D arrays ``z3[b, g, j]``, for which the vectorised loop's runtime alias
  checks fail and the scalar loop runs (3x slower on the seed LSTM's step). The GRU kernels
  take a row's gates as slices (``row[u : 2 * u]``), which is cheaper per row than numba's
  ``reshape``. SimpleRNN, other activations and float64 use the general kernels.
* tanh and sigmoid are a float32 rational approximation (Eigen's, error < 3e-7) that LLVM
  vectorises; numba's scalar ``np.tanh`` is 50x slower here (no SVML). float64 uses ``np.tanh``
  exactly, so finite-difference gradient checks in float64 see the true function.
* Arrays are chunk- and time-major, (chunks, T, rows, ...), in processing order (go_backwards
  flips time in the transpose that is needed anyway): each step reads and writes contiguous
  blocks. Batch-major caches made every step touch 32 rows x 5 arrays strided by T, too many
  streams for the hardware prefetcher (the LSTM forward ran 3x slower).
* Step functions view arrays as (rows, gates, units) so that every inner loop runs over
  ``range(units)`` with constant gate indices: an offset index like ``a[u + j]`` keeps numba's
  negative-index wraparound check in the loop and stops vectorisation (5x slower).
* Step functions write straight into the caches (gate pre-activations into ``gates[s]``,
  gradients into ``dxp[s]``), which the BLAS calls read and write too.
* Each cell has its own kernels, so a model compiles only the cells it uses (seed LSTM cold
  start, all of the model's kernels: about 20 s; cached: 1 s).

Masking (Keras semantics): at a masked step the states are kept and the output is the previous
output (or zero with ``zero_output_for_mask``, as Bidirectional uses with return_sequences);
backward passes the gradient of the kept states straight through.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from . import blas
from .activations import gradient_into
from .blas import NO_TRANS, SGEMM, sgemm

__all__ = [
    "RNN_ACTIVATIONS",
    "STEPWISE_MIN_BATCH",
    "merge_backward",
    "merge_forward",
    "reverse_time",
    "rnn_backward",
    "rnn_forward",
]

#: activations a recurrent cell can use (codes passed to the kernels)
RNN_ACTIVATIONS = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
#: from this many rows on, one thread runs the batch with a BLAS product per step (``_chunks``)
STEPWISE_MIN_BATCH = 16
#: a thread gets at least this many rows of the batch
MIN_ROWS_PER_THREAD = 4
#: threads for the recurrence; None: numba's thread count (``numba.set_num_threads``)
MAX_THREADS: int | None = None
#: float32 LSTMs and GRUs call OpenBLAS's sgemm from inside their jitted sequence kernels
#: (``blas.py``)
USE_SGEMM = bool(SGEMM) and blas.blas_threads() is not None
_GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}
_OPTS = {"cache": True, "fastmath": {"contract"}, "error_model": "numpy", "nogil": True}


# ----------------------------------------------------------------------------- activations


@njit(**_OPTS)
def _act3(v, b, g0, g1, code, exact, one):
    """v[b, g0:g1, :] = activation(...) in place (code: 0 linear, 1 relu, 2 sigmoid, 3 tanh).

    float32 (``exact`` False) uses Eigen's rational approximation of tanh (max error 3e-7);
    sigmoid(x) = (1 + tanh(x / 2)) / 2 reuses it. float64 uses np.tanh exactly.
    """
    u = v.shape[2]
    if code == 1:
        zero = one - one
        for g in range(g0, g1):
            for j in range(u):
                x = v[b, g, j]
                v[b, g, j] = x if not x <= zero else zero  # NaN stays NaN
        return
    if code != 2 and code != 3:
        return
    if exact:
        for g in range(g0, g1):
            if code == 2:
                for j in range(u):
                    v[b, g, j] = 0.5 * np.tanh(0.5 * v[b, g, j]) + 0.5
            else:
                for j in range(u):
                    v[b, g, j] = np.tanh(v[b, g, j])
        return
    sc = np.float32(0.5) if code == 2 else np.float32(1.0)
    sh = np.float32(0.5) if code == 2 else np.float32(0.0)
    lim = np.float32(7.90531110763549805)
    for g in range(g0, g1):
        for j in range(u):
            x = v[b, g, j] * sc
            xc = x if x < lim else lim
            xc = xc if xc > -lim else -lim
            x2 = xc * xc
            p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
            p = x2 * p + np.float32(-8.60467152213735e-11)
            p = x2 * p + np.float32(5.12229709037114e-08)
            p = x2 * p + np.float32(1.48572235717979e-05)
            p = x2 * p + np.float32(6.37261928875436e-04)
            p = x2 * p + np.float32(4.89352455891786e-03)
            p = xc * p
            q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
            q = x2 * q + np.float32(2.26843463243900e-03)
            q = x2 * q + np.float32(4.89352518554385e-03)
            t = x if abs(x) < np.float32(0.0004) else p / q
            v[b, g, j] = t * sc + sh


@njit(**_OPTS)
def _dact3(y, b, g0, g1, dst, code, one):
    """dst[b, g, :] = d activation / d x where the activation's output is y[b, g, :]."""
    u = y.shape[2]
    zero = one - one
    for g in range(g0, g1):
        if code == 3:
            for j in range(u):
                v = y[b, g, j]
                dst[b, g, j] = one - v * v
        elif code == 2:
            for j in range(u):
                v = y[b, g, j]
                dst[b, g, j] = v * (one - v)
        elif code == 1:
            for j in range(u):
                dst[b, g, j] = one if y[b, g, j] > zero else zero
        else:
            for j in range(u):
                dst[b, g, j] = one


@njit(**_OPTS)
def _mm_acc(idx, n, a, bm, out):
    """out[r] += a[r] @ bm for the rows r = idx[:n] (all arrays C-contiguous).

    Two rows and eight k at a time with the contiguous axis of bm and out innermost, so that the
    inner loop is a vectorised run of fused multiply-adds; about 60% of OpenBLAS's speed for these
    shapes, but without a Python call per time step.
    """
    kk, nn = bm.shape
    k8 = kk - kk % 8
    i = 0
    while i + 1 < n:
        p = idx[i]
        q = idx[i + 1]
        for k in range(0, k8, 8):
            p0, p1, p2, p3 = a[p, k], a[p, k + 1], a[p, k + 2], a[p, k + 3]
            p4, p5, p6, p7 = a[p, k + 4], a[p, k + 5], a[p, k + 6], a[p, k + 7]
            q0, q1, q2, q3 = a[q, k], a[q, k + 1], a[q, k + 2], a[q, k + 3]
            q4, q5, q6, q7 = a[q, k + 4], a[q, k + 5], a[q, k + 6], a[q, k + 7]
            for j in range(nn):
                r0, r1, r2, r3 = bm[k, j], bm[k + 1, j], bm[k + 2, j], bm[k + 3, j]
                r4, r5, r6, r7 = bm[k + 4, j], bm[k + 5, j], bm[k + 6, j], bm[k + 7, j]
                out[p, j] += (
                    p0 * r0 + p1 * r1 + p2 * r2 + p3 * r3 + p4 * r4 + p5 * r5 + p6 * r6 + p7 * r7
                )
                out[q, j] += (
                    q0 * r0 + q1 * r1 + q2 * r2 + q3 * r3 + q4 * r4 + q5 * r5 + q6 * r6 + q7 * r7
                )
        for k in range(k8, kk):
            pk = a[p, k]
            qk = a[q, k]
            for j in range(nn):
                out[p, j] += pk * bm[k, j]
                out[q, j] += qk * bm[k, j]
        i += 2
    if i < n:
        p = idx[i]
        for k in range(0, k8, 8):
            p0, p1, p2, p3 = a[p, k], a[p, k + 1], a[p, k + 2], a[p, k + 3]
            p4, p5, p6, p7 = a[p, k + 4], a[p, k + 5], a[p, k + 6], a[p, k + 7]
            for j in range(nn):
                r0, r1, r2, r3 = bm[k, j], bm[k + 1, j], bm[k + 2, j], bm[k + 3, j]
                r4, r5, r6, r7 = bm[k + 4, j], bm[k + 5, j], bm[k + 6, j], bm[k + 7, j]
                out[p, j] += (
                    p0 * r0 + p1 * r1 + p2 * r2 + p3 * r3 + p4 * r4 + p5 * r5 + p6 * r6 + p7 * r7
                )
        for k in range(k8, kk):
            pk = a[p, k]
            for j in range(nn):
                out[p, j] += pk * bm[k, j]


# ----------------------------------------------------------------------------- per-step helpers


@njit(**_OPTS)
def _active_rows(ms, idx):
    """idx[:n] = the rows whose mask ms is set; returns n."""
    n = 0
    for b in range(ms.shape[0]):
        if ms[b]:
            idx[n] = b
            n += 1
    return n


@njit(**_OPTS)
def _next_hm(b, u, h, hm, rmask, has_rd):
    """hm[b] = h[b] * the recurrent-dropout mask: what multiplies the recurrent kernel next."""
    if has_rd:
        for j in range(u):
            hm[b, j] = h[b, j] * rmask[b, j]
    else:
        for j in range(u):
            hm[b, j] = h[b, j]


@njit(**_OPTS)
def _take_dh(b, u, dh, dhr, rmask, has_rd, dys, add_dy):
    """dh[b] += the gradient back through the recurrent kernel (times the recurrent-dropout
    mask) and, when ``add_dy``, the gradient of this step's output."""
    if has_rd:
        for j in range(u):
            dh[b, j] += dhr[b, j] * rmask[b, j]
    else:
        for j in range(u):
            dh[b, j] += dhr[b, j]
    if add_dy:
        for j in range(u):
            dh[b, j] += dys[b, j]


# ----------------------------------------------------------------------------- LSTM


@njit(**_OPTS)
def _lstm_step(z3, xs, h, c, hm, tmp, ms, rmask, has_rd, act, ract, exact, one, hs, cs):
    """One LSTM step. z3 (B, 4, u) holds hm @ recurrent_kernel and becomes the activated gates
    i, f, c~, o (the backward cache when z3 is gates[s]); xs (B, 4, u) is the step's input
    projection. Updates h, c and hm; hs[:] = h, cs[:] = c (masked rows keep their states)."""
    nb, u = h.shape
    for b in range(nb):
        if ms[b]:
            for g in range(4):
                for j in range(u):
                    z3[b, g, j] += xs[b, g, j]
            _act3(z3, b, 0, 2, ract, exact, one)
            _act3(z3, b, 2, 3, act, exact, one)
            _act3(z3, b, 3, 4, ract, exact, one)
            for j in range(u):
                cj = z3[b, 1, j] * c[b, j] + z3[b, 0, j] * z3[b, 2, j]
                c[b, j] = cj
                tmp[b, 0, j] = cj
            _act3(tmp, b, 0, 1, act, exact, one)
            for j in range(u):
                h[b, j] = z3[b, 3, j] * tmp[b, 0, j]
            _next_hm(b, u, h, hm, rmask, has_rd)
        for j in range(u):
            hs[b, j] = h[b, j]
            cs[b, j] = c[b, j]


@njit(**_OPTS)
def _lstm_bstep(
    dz3,
    dh,
    dc,
    dhr,
    tc,
    dtc,
    dd,
    ms,
    rmask,
    has_rd,
    act,
    ract,
    exact,
    one,
    dys,
    add_dy,
    g3,
    cs,
    cps,
    has_prev,
):
    """One backward LSTM step: takes dhr (the gradient back through the recurrent kernel from
    the next step) and writes dz3 (B, 4, u), the gradient of the gate pre-activations (zero on
    masked rows). g3: the step's gates; cs, cps: its cell state and the previous one."""
    nb, u = dh.shape
    zero = one - one
    cpf = one if has_prev else zero
    for b in range(nb):
        m = ms[b]
        _take_dh(b, u, dh, dhr, rmask, has_rd, dys, add_dy)
        if not m:
            for g in range(4):
                for j in range(u):
                    dz3[b, g, j] = zero
            continue
        for j in range(u):
            tc[b, 0, j] = cs[b, j]
        _act3(tc, b, 0, 1, act, exact, one)
        _dact3(g3, b, 0, 2, dd, ract, one)
        _dact3(g3, b, 2, 3, dd, act, one)
        _dact3(g3, b, 3, 4, dd, ract, one)
        _dact3(tc, b, 0, 1, dtc, act, one)
        for j in range(u):
            dhj = dh[b, j]
            dcj = dc[b, j] + dhj * g3[b, 3, j] * dtc[b, 0, j]
            dz3[b, 0, j] = dcj * g3[b, 2, j] * dd[b, 0, j]
            dz3[b, 1, j] = dcj * (cps[b, j] * cpf) * dd[b, 1, j]
            dz3[b, 2, j] = dcj * g3[b, 0, j] * dd[b, 2, j]
            dz3[b, 3, j] = dhj * tc[b, 0, j] * dd[b, 3, j]
            dc[b, j] = dcj * g3[b, 1, j]
            dh[b, j] = zero


# float32 with the default activations (tanh, sigmoid): the gate math of a row is ONE loop over
# the units on slices of the 1-D row views (``z[b][u : 2 * u]``). LLVM vectorises such a loop;
# the same loop on 3-D indices ``z3[b, g, j]`` ran scalar (the vectorised version exists but its
# runtime alias checks fail), 3x slower. Slices, not ``z[b].reshape(4, u)[g]``: numba's reshape
# costs a helper call per row and array.

_F32 = np.float32


@njit(inline="always", **_OPTS)
def _tanh32(x):
    """Eigen's float32 rational tanh (the same formula as ``_act3``'s)."""
    lim = _F32(7.90531110763549805)
    xc = x if x < lim else lim
    xc = xc if xc > -lim else -lim
    x2 = xc * xc
    p = x2 * _F32(-2.76076847742355e-16) + _F32(2.00018790482477e-13)
    p = x2 * p + _F32(-8.60467152213735e-11)
    p = x2 * p + _F32(5.12229709037114e-08)
    p = x2 * p + _F32(1.48572235717979e-05)
    p = x2 * p + _F32(6.37261928875436e-04)
    p = x2 * p + _F32(4.89352455891786e-03)
    p = xc * p
    q = x2 * _F32(1.19825839466702e-06) + _F32(1.18534705686654e-04)
    q = x2 * q + _F32(2.26843463243900e-03)
    q = x2 * q + _F32(4.89352518554385e-03)
    return x if abs(x) < _F32(0.0004) else p / q


@njit(inline="always", **_OPTS)
def _sigmoid32(x):
    half = _F32(0.5)
    return half * _tanh32(half * x) + half


@njit(**_OPTS)
def _lstm_step32(z, xs, h, c, hm, ms, rmask, has_rd, hs, cs):
    """``_lstm_step`` for float32, tanh and sigmoid; z and xs are (B, 4u)."""
    nb, u = h.shape
    for b in range(nb):
        hr = h[b]
        cr = c[b]
        hsr = hs[b]
        csr = cs[b]
        if ms[b]:
            zr = z[b]
            xr = xs[b]
            for j in range(4 * u):
                zr[j] += xr[j]
            zi = zr[:u]
            zf = zr[u : 2 * u]
            zg = zr[2 * u : 3 * u]
            zo = zr[3 * u :]
            for j in range(u):
                ig = _sigmoid32(zi[j])
                fg = _sigmoid32(zf[j])
                gg = _tanh32(zg[j])
                og = _sigmoid32(zo[j])
                zi[j] = ig
                zf[j] = fg
                zg[j] = gg
                zo[j] = og
                cj = fg * cr[j] + ig * gg
                cr[j] = cj
                hsr[j] = og * _tanh32(cj)
            for j in range(u):
                hr[j] = hsr[j]
            _next_hm(b, u, h, hm, rmask, has_rd)
            for j in range(u):
                csr[j] = cr[j]
        else:
            for j in range(u):
                hsr[j] = hr[j]
                csr[j] = cr[j]


@njit(**_OPTS)
def _lstm_bstep32(dz, dh, dc, dhr, ms, rmask, has_rd, dys, add_dy, g, cs, cps, has_prev):
    """``_lstm_bstep`` for float32, tanh and sigmoid; dz and g are (B, 4u)."""
    nb, u = dh.shape
    zero = _F32(0)
    one = _F32(1)
    cpf = one if has_prev else zero
    for b in range(nb):
        _take_dh(b, u, dh, dhr, rmask, has_rd, dys, add_dy)
        dzr = dz[b]
        if not ms[b]:
            for j in range(4 * u):
                dzr[j] = zero
            continue
        gb = g[b]
        gi = gb[:u]
        gf = gb[u : 2 * u]
        gg = gb[2 * u : 3 * u]
        go = gb[3 * u :]
        di = dzr[:u]
        df = dzr[u : 2 * u]
        dg = dzr[2 * u : 3 * u]
        do = dzr[3 * u :]
        dhb = dh[b]
        dcb = dc[b]
        csb = cs[b]
        cpb = cps[b]
        for j in range(u):
            ij = gi[j]
            fj = gf[j]
            gj = gg[j]
            oj = go[j]
            tc = _tanh32(csb[j])
            dhj = dhb[j]
            dcj = dcb[j] + dhj * oj * (one - tc * tc)
            di[j] = dcj * gj * (ij * (one - ij))
            df[j] = dcj * (cpb[j] * cpf) * (fj * (one - fj))
            dg[j] = dcj * ij * (one - gj * gj)
            do[j] = dhj * tc * (oj * (one - oj))
            dcb[j] = dcj * fj
            dhb[j] = zero


# ----------------------------------------------------------------------------- GRU


@njit(**_OPTS)
def _gru_step(z3, xs, h, rb, hm, g3, ms, rmask, has_rd, act, ract, exact, one, hs):
    """One GRU (reset_after) step. z3 (B, 3, u) = hm @ recurrent_kernel; rb (3, u) the
    recurrent bias; g3 (B, 4, u) receives z, r, hh and the recurrent h-part (the backward
    cache when it is gates[s]). Updates h and hm; hs[:] = h."""
    nb, u = h.shape
    for b in range(nb):
        if ms[b]:
            for j in range(u):
                g3[b, 0, j] = xs[b, 0, j] + z3[b, 0, j] + rb[0, j]
                g3[b, 1, j] = xs[b, 1, j] + z3[b, 1, j] + rb[1, j]
                g3[b, 3, j] = z3[b, 2, j] + rb[2, j]
            _act3(g3, b, 0, 2, ract, exact, one)
            for j in range(u):
                g3[b, 2, j] = xs[b, 2, j] + g3[b, 1, j] * g3[b, 3, j]
            _act3(g3, b, 2, 3, act, exact, one)
            for j in range(u):
                zj = g3[b, 0, j]
                h[b, j] = zj * h[b, j] + (one - zj) * g3[b, 2, j]
            _next_hm(b, u, h, hm, rmask, has_rd)
        for j in range(u):
            hs[b, j] = h[b, j]


@njit(**_OPTS)
def _gru_bstep(
    dz3,
    dx3,
    dh,
    dhr,
    dd,
    ms,
    rmask,
    has_rd,
    act,
    ract,
    exact,
    one,
    dys,
    add_dy,
    g3,
    hps,
    has_prev,
):
    """One backward GRU step: dx3 (B, 3, u) = gradient of the input projection, dz3 (B, 3, u)
    = gradient of hm @ recurrent_kernel + recurrent bias; hps: the previous state."""
    nb, u = dh.shape
    zero = one - one
    hpf = one if has_prev else zero
    for b in range(nb):
        m = ms[b]
        _take_dh(b, u, dh, dhr, rmask, has_rd, dys, add_dy)
        if not m:
            for g in range(3):
                for j in range(u):
                    dz3[b, g, j] = zero
                    dx3[b, g, j] = zero
            continue
        _dact3(g3, b, 0, 2, dd, ract, one)
        _dact3(g3, b, 2, 3, dd, act, one)
        for j in range(u):
            zj = g3[b, 0, j]
            dhj = dh[b, j]
            vz = dhj * (hps[b, j] * hpf - g3[b, 2, j]) * dd[b, 0, j]
            vh = dhj * (one - zj) * dd[b, 2, j]
            vr = vh * g3[b, 3, j] * dd[b, 1, j]
            dx3[b, 0, j] = vz
            dx3[b, 1, j] = vr
            dx3[b, 2, j] = vh
            dz3[b, 0, j] = vz
            dz3[b, 1, j] = vr
            dz3[b, 2, j] = vh * g3[b, 1, j]
            dh[b, j] = dhj * zj


@njit(**_OPTS)
def _gru_step32(z, xs, h, rb, hm, g, ms, rmask, has_rd, hs):
    """``_gru_step`` for float32, tanh and sigmoid; z and xs are (B, 3u), g is (B, 4u).

    The gate rows are slices of the 1-D row views (``z[b][u : 2 * u]``): numba's
    ``reshape(3, u)`` of a row costs a helper call per row and array, which made these kernels
    1.8x slower at 64 units (16 rows per step)."""
    nb, u = h.shape
    one = _F32(1)
    rbz = rb[0]
    rbr = rb[1]
    rbh = rb[2]
    for b in range(nb):
        hr = h[b]
        hsr = hs[b]
        if ms[b]:
            zb = z[b]
            zz = zb[:u]
            zr = zb[u : 2 * u]
            zh = zb[2 * u :]
            xb = xs[b]
            xz = xb[:u]
            xr = xb[u : 2 * u]
            xh = xb[2 * u :]
            gb = g[b]
            gz = gb[:u]
            gr = gb[u : 2 * u]
            gh = gb[2 * u : 3 * u]
            gq = gb[3 * u :]
            for j in range(u):
                zj = _sigmoid32(xz[j] + zz[j] + rbz[j])
                rj = _sigmoid32(xr[j] + zr[j] + rbr[j])
                qj = zh[j] + rbh[j]
                hh = _tanh32(xh[j] + rj * qj)
                gz[j] = zj
                gr[j] = rj
                gh[j] = hh
                gq[j] = qj
                hsr[j] = zj * hr[j] + (one - zj) * hh
            for j in range(u):
                hr[j] = hsr[j]
            _next_hm(b, u, h, hm, rmask, has_rd)
        else:
            for j in range(u):
                hsr[j] = hr[j]


@njit(**_OPTS)
def _gru_bstep32(dr, dx, dh, dhr, ms, rmask, has_rd, dys, add_dy, g, hps, has_prev):
    """``_gru_bstep`` for float32, tanh and sigmoid; dr and dx are (B, 3u), g is (B, 4u)."""
    nb, u = dh.shape
    zero = _F32(0)
    one = _F32(1)
    hpf = one if has_prev else zero
    for b in range(nb):
        _take_dh(b, u, dh, dhr, rmask, has_rd, dys, add_dy)
        drb = dr[b]
        dxb = dx[b]
        if not ms[b]:
            for j in range(3 * u):
                drb[j] = zero
                dxb[j] = zero
            continue
        gb = g[b]
        gz = gb[:u]
        gr = gb[u : 2 * u]
        gh = gb[2 * u : 3 * u]
        gq = gb[3 * u :]
        rz = drb[:u]
        rr = drb[u : 2 * u]
        rh = drb[2 * u :]
        xz = dxb[:u]
        xr = dxb[u : 2 * u]
        xh = dxb[2 * u :]
        dhb = dh[b]
        hpb = hps[b]
        for j in range(u):
            zj = gz[j]
            rj = gr[j]
            hj = gh[j]
            dhj = dhb[j]
            vz = dhj * (hpb[j] * hpf - hj) * (zj * (one - zj))
            vh = dhj * (one - zj) * (one - hj * hj)
            vr = vh * gq[j] * (rj * (one - rj))
            xz[j] = vz
            xr[j] = vr
            xh[j] = vh
            rz[j] = vz
            rr[j] = vr
            rh[j] = vh * rj
            dhb[j] = dhj * zj


# ----------------------------------------------------------------------------- SimpleRNN


@njit(**_OPTS)
def _simple_step(z3, xs, h, hm, ms, rmask, has_rd, act, exact, one, hs):
    """One SimpleRNN step: h = act(x-projection + hm @ recurrent_kernel); z3 is (B, 1, u)."""
    nb, u = h.shape
    for b in range(nb):
        if ms[b]:
            for j in range(u):
                z3[b, 0, j] += xs[b, 0, j]
            _act3(z3, b, 0, 1, act, exact, one)
            for j in range(u):
                h[b, j] = z3[b, 0, j]
            _next_hm(b, u, h, hm, rmask, has_rd)
        for j in range(u):
            hs[b, j] = h[b, j]


@njit(**_OPTS)
def _simple_bstep(dz3, dh, dhr, dd, ms, rmask, has_rd, act, one, dys, add_dy, hs3):
    """One backward SimpleRNN step (hs3: this step's states viewed as (B, 1, u))."""
    nb, u = dh.shape
    zero = one - one
    for b in range(nb):
        m = ms[b]
        _take_dh(b, u, dh, dhr, rmask, has_rd, dys, add_dy)
        if not m:
            for j in range(u):
                dz3[b, 0, j] = zero
            continue
        _dact3(hs3, b, 0, 1, dd, act, one)
        for j in range(u):
            dz3[b, 0, j] = dh[b, j] * dd[b, 0, j]
            dh[b, j] = zero


# ----------------------------------------------------------------------------- whole sequences
# For small batches one jitted call runs the whole sequence: the same step functions with the
# hand-written product in between, so there is no Python call per step. Arrays are time-major
# (T, B, ...) as in ``rnn_forward`` / ``rnn_backward``.


@njit(**_OPTS)
def _lstm_seq(gates, xp, rk, h, c, hm, tmp, mask, rmask, has_rd, act, ract, exact, one, hst, cst):
    steps, nb, _ = gates.shape
    u = h.shape[1]
    idx = np.empty(nb, np.int64)
    for s in range(steps):
        zs = gates[s]
        zs[:] = 0
        n = _active_rows(mask[s], idx)
        _mm_acc(idx, n, hm, rk, zs)
        _lstm_step(
            zs.reshape(nb, 4, u),
            xp[s].reshape(nb, 4, u),
            h,
            c,
            hm,
            tmp,
            mask[s],
            rmask,
            has_rd,
            act,
            ract,
            exact,
            one,
            hst[s],
            cst[s],
        )


@njit(**_OPTS)
def _lstm_bseq(
    dxp,
    rkt,
    dh,
    dc,
    dhr,
    tc,
    dtc,
    dd,
    mask,
    rmask,
    has_rd,
    act,
    ract,
    exact,
    one,
    dyt,
    seq,
    gates,
    cst,
):
    steps, nb, _ = dxp.shape
    u = dh.shape[1]
    idx = np.empty(nb, np.int64)
    for s in range(steps - 1, -1, -1):
        _lstm_bstep(
            dxp[s].reshape(nb, 4, u),
            dh,
            dc,
            dhr,
            tc,
            dtc,
            dd,
            mask[s],
            rmask,
            has_rd,
            act,
            ract,
            exact,
            one,
            dyt[s if seq else 0],
            seq or s == steps - 1,
            gates[s].reshape(nb, 4, u),
            cst[s],
            cst[max(s - 1, 0)],
            s > 0,
        )
        dhr[:] = 0
        n = _active_rows(mask[s], idx)
        _mm_acc(idx, n, dxp[s], rkt, dhr)


@njit(**_OPTS)
def _gru_seq(z, xp, rk, h, rb, hm, gates, mask, rmask, has_rd, act, ract, exact, one, hst):
    steps, nb, _ = gates.shape
    u = h.shape[1]
    idx = np.empty(nb, np.int64)
    for s in range(steps):
        z[:] = 0
        n = _active_rows(mask[s], idx)
        _mm_acc(idx, n, hm, rk, z)
        _gru_step(
            z.reshape(nb, 3, u),
            xp[s].reshape(nb, 3, u),
            h,
            rb,
            hm,
            gates[s].reshape(nb, 4, u),
            mask[s],
            rmask,
            has_rd,
            act,
            ract,
            exact,
            one,
            hst[s],
        )


@njit(**_OPTS)
def _gru_bseq(
    drec,
    dxp,
    rkt,
    dh,
    dhr,
    dd,
    mask,
    rmask,
    has_rd,
    act,
    ract,
    exact,
    one,
    dyt,
    seq,
    gates,
    hst,
):
    steps, nb, _ = dxp.shape
    u = dh.shape[1]
    idx = np.empty(nb, np.int64)
    for s in range(steps - 1, -1, -1):
        _gru_bstep(
            drec[s].reshape(nb, 3, u),
            dxp[s].reshape(nb, 3, u),
            dh,
            dhr,
            dd,
            mask[s],
            rmask,
            has_rd,
            act,
            ract,
            exact,
            one,
            dyt[s if seq else 0],
            seq or s == steps - 1,
            gates[s].reshape(nb, 4, u),
            hst[max(s - 1, 0)],
            s > 0,
        )
        dhr[:] = 0
        n = _active_rows(mask[s], idx)
        _mm_acc(idx, n, drec[s], rkt, dhr)


@njit(**_OPTS)
def _simple_seq(z, xp, rk, h, hm, mask, rmask, has_rd, act, exact, one, hst):
    steps, nb, u = hst.shape
    idx = np.empty(nb, np.int64)
    for s in range(steps):
        z[:] = 0
        n = _active_rows(mask[s], idx)
        _mm_acc(idx, n, hm, rk, z)
        _simple_step(
            z.reshape(nb, 1, u),
            xp[s].reshape(nb, 1, u),
            h,
            hm,
            mask[s],
            rmask,
            has_rd,
            act,
            exact,
            one,
            hst[s],
        )


@njit(**_OPTS)
def _simple_bseq(dxp, rkt, dh, dhr, dd, mask, rmask, has_rd, act, one, dyt, seq, hst):
    steps, nb, u = dxp.shape
    idx = np.empty(nb, np.int64)
    for s in range(steps - 1, -1, -1):
        _simple_bstep(
            dxp[s].reshape(nb, 1, u),
            dh,
            dhr,
            dd,
            mask[s],
            rmask,
            has_rd,
            act,
            one,
            dyt[s if seq else 0],
            seq or s == steps - 1,
            hst[s].reshape(nb, 1, u),
        )
        dhr[:] = 0
        n = _active_rows(mask[s], idx)
        _mm_acc(idx, n, dxp[s], rkt, dhr)


@njit(**_OPTS)
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
    _mm_acc(idx, _active_rows(ms, idx), a, b, out)


@njit(**_OPTS)
def _lstm_seq32(gates, xp, rk, h, c, hm, mask, rmask, has_rd, hst, cst, gemm):
    """``_lstm_seq`` for float32, tanh and sigmoid; ``gemm`` is OpenBLAS's sgemm (blas.SGEMM),
    or 0 for the loop product. A cache with one time step (inference) is reused every step."""
    idx = np.empty(h.shape[0], np.int64)
    ng, nh, nc = gates.shape[0], hst.shape[0], cst.shape[0]
    for s in range(xp.shape[0]):
        zs = gates[s % ng]
        _recurrent_product(gemm, hm, rk, zs, mask[s], idx)
        _lstm_step32(zs, xp[s], h, c, hm, mask[s], rmask, has_rd, hst[s % nh], cst[s % nc])


@njit(**_OPTS)
def _lstm_bseq32(dxp, rkt, dh, dc, dhr, mask, rmask, has_rd, dyt, seq, gates, cst, gemm):
    """``_lstm_bseq`` for float32, tanh and sigmoid (``gemm`` as in ``_lstm_seq32``)."""
    steps = dxp.shape[0]
    idx = np.empty(dh.shape[0], np.int64)
    for s in range(steps - 1, -1, -1):
        _lstm_bstep32(
            dxp[s],
            dh,
            dc,
            dhr,
            mask[s],
            rmask,
            has_rd,
            dyt[s if seq else 0],
            seq or s == steps - 1,
            gates[s],
            cst[s],
            cst[max(s - 1, 0)],
            s > 0,
        )
        if s:
            _recurrent_product(gemm, dxp[s], rkt, dhr, mask[s], idx)
        else:
            dhr[:] = 0


@njit(**_OPTS)
def _gru_seq32(z, xp, rk, h, rb, hm, gates, mask, rmask, has_rd, hst, gemm):
    """``_gru_seq`` for float32, tanh and sigmoid (``gemm`` and one-step caches as in
    ``_lstm_seq32``)."""
    idx = np.empty(h.shape[0], np.int64)
    ng, nh = gates.shape[0], hst.shape[0]
    for s in range(xp.shape[0]):
        _recurrent_product(gemm, hm, rk, z, mask[s], idx)
        _gru_step32(z, xp[s], h, rb, hm, gates[s % ng], mask[s], rmask, has_rd, hst[s % nh])


@njit(**_OPTS)
def _gru_bseq32(drec, dxp, rkt, dh, dhr, mask, rmask, has_rd, dyt, seq, gates, hst, gemm):
    """``_gru_bseq`` for float32, tanh and sigmoid (``gemm`` as in ``_lstm_seq32``)."""
    steps = dxp.shape[0]
    idx = np.empty(dh.shape[0], np.int64)
    for s in range(steps - 1, -1, -1):
        _gru_bstep32(
            drec[s],
            dxp[s],
            dh,
            dhr,
            mask[s],
            rmask,
            has_rd,
            dyt[s if seq else 0],
            seq or s == steps - 1,
            gates[s],
            hst[max(s - 1, 0)],
            s > 0,
        )
        if s:
            _recurrent_product(gemm, drec[s], rkt, dhr, mask[s], idx)
        else:
            dhr[:] = 0


# ----------------------------------------------------------------------------- threads
# The batch is split into one chunk of rows per thread; a chunk's arrays are contiguous
# ("chunk-major": (chunks, T, rows, ...)), each thread runs its chunk's whole sequence and the
# threads never meet until the end. Python threads, not prange: the kernels release the GIL and
# a prange twin of every kernel would double the cold compile time.

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    # a forked child inherits the pool object but not its threads: start a fresh one there
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _plan(nb: int, fast: bool) -> tuple[int, bool]:
    """(chunks, fused): how many threads share a batch of nb rows, and whether each runs its
    sequence in one jitted call (fused) or with a numpy product per step.

    Chunks: the most threads (up to numba's thread count, or ``MAX_THREADS``) that split the batch
    evenly into chunks of at least ``MIN_ROWS_PER_THREAD`` rows. A float32 LSTM or GRU with the
    default activations (``fast``) and OpenBLAS's sgemm at hand (``USE_SGEMM``) always runs fused,
    each chunk thread calling sgemm per step, with OpenBLAS single-threaded for the whole layer (see
    ``rnn_forward``). Otherwise, from ``STEPWISE_MIN_BATCH`` rows on (unless ``MAX_THREADS`` says
    otherwise) one thread runs the batch with a numpy product per step: after each multi-threaded
    product OpenBLAS's worker spins for over 100 ms and would take a core from a second chunk
    thread (measured: the chunk threads ran 1.6x slower)."""
    own = fast and USE_SGEMM
    if not own and MAX_THREADS is None and nb >= STEPWISE_MIN_BATCH:
        return 1, False
    n = max(1, numba.get_num_threads() if MAX_THREADS is None else MAX_THREADS)
    while n > 1 and (nb % n or nb // n < MIN_ROWS_PER_THREAD):
        n -= 1
    return n, own or n > 1 or nb // n < STEPWISE_MIN_BATCH


def _gemm() -> int:
    """The sgemm address for the jitted kernels, or 0 for their loop product."""
    return SGEMM if USE_SGEMM else 0


def _blas_for(nch: int):
    """OpenBLAS single-threaded while our nch > 1 threads each call it."""
    return blas.single_threaded() if nch > 1 else contextlib.nullcontext()


def _run_chunks(fn, nch: int) -> None:
    """fn(0), ..., fn(nch - 1), on nch threads (the caller runs chunk 0)."""
    global _pool, _pool_size
    if nch == 1:
        fn(0)
        return
    with _pool_lock:
        if _pool is None or _pool_size < nch - 1:
            _pool = ThreadPoolExecutor(nch - 1, thread_name_prefix="edgemine-rnn")
            _pool_size = nch - 1
        pool = _pool
    futures = [pool.submit(fn, k) for k in range(1, nch)]
    try:
        fn(0)
    finally:
        for f in futures:
            f.result()


def _to_chunks(a, nch: int, rev: bool):
    """(B, T, ...) -> contiguous (nch, T, B / nch, ...) in processing order."""
    nb, steps = a.shape[:2]
    c = np.swapaxes(a.reshape(nch, nb // nch, steps, *a.shape[2:]), 1, 2)
    return np.ascontiguousarray(c[:, ::-1] if rev else c)


def _from_chunks(c, rev: bool):
    """The inverse of ``_to_chunks``: (nch, T, rows, ...) -> (B, T, ...)."""
    b = np.ascontiguousarray(np.swapaxes(c[:, ::-1] if rev else c, 1, 2))
    return b.reshape(-1, *b.shape[2:])


# ----------------------------------------------------------------------------- op functions


def _column_sums(a2d):
    # one BLAS product: numpy's axis-0 sum is several times slower on these shapes
    return np.ones(a2d.shape[0], dtype=a2d.dtype) @ a2d


def _dropout_mask(shape, rate, rng, dtype):
    keep = rng.random(shape, dtype=np.float32) >= rate
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate))


class RNNCache:
    """What ``rnn_backward`` needs from ``rnn_forward`` (opaque to layers); while the forward
    runs, also the state that its chunk threads share."""

    __slots__ = (
        "cell",
        "xc",
        "kernel",
        "rk",
        "mask",
        "rmask",
        "dmask",
        "has_rd",
        "rev",
        "seq",
        "zero_out",
        "act",
        "ract",
        "hst",
        "cst",
        "gates",
        "fast",
        "fused",
        # forward-only state (dropped before the cache is returned)
        "xp",
        "rb",
        "exact",
        "one",
        "full",
        "store_h",
        "h",
        "c",
        "hm",
    )


def _forward_chunk(r: RNNCache, k: int) -> None:
    """Run chunk k's sequence: one jitted call (small chunks) or a BLAS product per step."""
    fused, fast, cell, xp, rk, rb, m = r.fused, r.fast, r.cell, r.xp, r.rk, r.rb, r.mask
    rmask, has_rd, act, ract, exact, one = r.rmask, r.has_rd, r.act, r.ract, r.exact, r.one
    full, store_h, h, c, hm, hst, cst, gates = (
        r.full,
        r.store_h,
        r.h,
        r.c,
        r.hm,
        r.hst,
        r.cst,
        r.gates,
    )
    steps, nb = m.shape[1:3]
    u = rk.shape[0]
    rmk = rmask[k] if has_rd else rmask
    if fast and cell == "gru":
        z = np.empty((nb, 3 * u), xp.dtype)
        gk, xk, hk, hmk, mk, hsk = gates[k], xp[k], h[k], hm[k], m[k], hst[k]
        if fused:
            _gru_seq32(z, xk, rk, hk, rb, hmk, gk, mk, rmk, has_rd, hsk, _gemm())
            return
        for s in range(steps):
            if s:
                np.matmul(hmk, rk, out=z)
            else:
                z[:] = 0  # h is zero before the first step
            i = s if full else 0
            _gru_step32(z, xk[s], hk, rb, hmk, gk[i], mk[s], rmk, has_rd, hsk[s if store_h else 0])
        return
    if fast:
        gk, xk, hk, ck, hmk, mk, hsk, csk = gates[k], xp[k], h[k], c[k], hm[k], m[k], hst[k], cst[k]
        if fused:
            _lstm_seq32(gk, xk, rk, hk, ck, hmk, mk, rmk, has_rd, hsk, csk, _gemm())
            return
        for s in range(steps):
            i = s if full else 0
            if s:
                np.matmul(hmk, rk, out=gk[i])
            else:
                gk[i] = 0  # h is zero before the first step
            _lstm_step32(
                gk[i], xk[s], hk, ck, hmk, mk[s], rmk, has_rd, hsk[s if store_h else 0], csk[i]
            )
        return
    if cell == "lstm":
        tmp = np.empty((nb, 1, u), xp.dtype)
        if fused:
            _lstm_seq(
                gates[k],
                xp[k],
                rk,
                h[k],
                c[k],
                hm[k],
                tmp,
                m[k],
                rmk,
                has_rd,
                act,
                ract,
                exact,
                one,
                hst[k],
                cst[k],
            )
            return
        g4 = gates[k].reshape(len(gates[k]), nb, 4, u)
        x4 = xp[k].reshape(steps, nb, 4, u)
        for s in range(steps):
            i = s if full else 0
            if s:
                np.matmul(hm[k], rk, out=gates[k, i])
            else:
                gates[k, i] = 0  # h is zero before the first step
            _lstm_step(
                g4[i],
                x4[s],
                h[k],
                c[k],
                hm[k],
                tmp,
                m[k, s],
                rmk,
                has_rd,
                act,
                ract,
                exact,
                one,
                hst[k, s if store_h else 0],
                cst[k, i],
            )
    elif cell == "gru":
        z = np.zeros((nb, 3 * u), xp.dtype)
        if fused:
            _gru_seq(
                z,
                xp[k],
                rk,
                h[k],
                rb,
                hm[k],
                gates[k],
                m[k],
                rmk,
                has_rd,
                act,
                ract,
                exact,
                one,
                hst[k],
            )
            return
        g4 = gates[k].reshape(len(gates[k]), nb, 4, u)
        x4 = xp[k].reshape(steps, nb, 3, u)
        z3 = z.reshape(nb, 3, u)
        for s in range(steps):
            if s:
                np.matmul(hm[k], rk, out=z)
            _gru_step(
                z3,
                x4[s],
                h[k],
                rb,
                hm[k],
                g4[s if full else 0],
                m[k, s],
                rmk,
                has_rd,
                act,
                ract,
                exact,
                one,
                hst[k, s if store_h else 0],
            )
    else:
        z = np.zeros((nb, u), xp.dtype)
        if fused:
            _simple_seq(z, xp[k], rk, h[k], hm[k], m[k], rmk, has_rd, act, exact, one, hst[k])
            return
        x3 = xp[k].reshape(steps, nb, 1, u)
        z3 = z.reshape(nb, 1, u)
        for s in range(steps):
            if s:
                np.matmul(hm[k], rk, out=z)
            _simple_step(
                z3,
                x3[s],
                h[k],
                hm[k],
                m[k, s],
                rmk,
                has_rd,
                act,
                exact,
                one,
                hst[k, s if store_h else 0],
            )


def rnn_forward(
    cell: str,
    x,
    kernel,
    recurrent_kernel,
    bias,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    mask=None,
    go_backwards: bool = False,
    return_sequences: bool = False,
    zero_output_for_mask: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    rng=None,
    training: bool = False,
):
    """Run a recurrent layer over x (batch, time, features). Returns (y, cache).

    ``cell`` is 'lstm', 'gru' or 'simple_rnn'; ``bias`` is None, (G,) for LSTM / SimpleRNN, or
    (2, G) for GRU (input bias, recurrent bias: Keras's reset_after layout). ``mask`` (batch,
    time) marks the real steps. y is (batch, time, units) with ``return_sequences`` (in
    processing order, reversed when ``go_backwards``, as Keras returns it), else (batch, units).
    ``dropout`` / ``recurrent_dropout`` draw one mask per sequence from ``rng`` when
    ``training``. The cache is None unless ``training``.
    """
    if cell not in _GATES:
        raise ValueError(f"unknown recurrent cell {cell!r}; known: {', '.join(_GATES)}")
    g = _GATES[cell] * recurrent_kernel.shape[0]
    act = RNN_ACTIVATIONS[activation]
    ract = RNN_ACTIVATIONS[recurrent_activation]
    dt = kernel.dtype
    one = dt.type(1)
    exact = bool(dt != np.float32)
    rev = bool(go_backwards)
    seq = bool(return_sequences)
    train = bool(training)
    x = np.asarray(x, dtype=dt)
    nb, steps, nin = x.shape
    u = recurrent_kernel.shape[0]
    rk = np.ascontiguousarray(recurrent_kernel)
    # float32 LSTM / GRU with the default activations: the vectorised ``_<cell>_step32`` kernels
    fast = cell in ("lstm", "gru") and not exact and act == 3 and ract == 2
    nch, fused = _plan(nb, fast)
    rows = nb // nch
    dmask = None
    if train and dropout > 0.0:
        dmask = _dropout_mask((nb, 1, nin), dropout, rng, dt)
        x = x * dmask
    has_rd = bool(train and recurrent_dropout > 0.0)
    if has_rd:
        rmask = _dropout_mask((nb, u), recurrent_dropout, rng, dt).reshape(nch, rows, u)
    else:
        rmask = np.ones((1, 1), dt)
    xc = _to_chunks(x, nch, rev)
    xp = np.empty((nch, steps, rows, g), dt)
    xbias = None if bias is None else (bias[0] if cell == "gru" else bias)
    if mask is None:
        m = np.ones((nch, steps, rows), np.uint8)
    else:
        m = _to_chunks(np.asarray(mask, dtype=np.bool_), nch, rev).view(np.uint8)
    # whole-sequence caches when training (hst also for a returned sequence); the general fused
    # kernels always get them (their batches are small) so that they have one signature, while
    # the fast ones reuse a one-step cache in inference (39 MB per layer at batch 256)
    full = train or (fused and not fast)
    store_h = full or seq
    h = np.zeros((nch, rows, u), dt)
    hm = np.zeros((nch, rows, u), dt)
    c = np.zeros((nch, rows, u), dt) if cell == "lstm" else h
    hst = np.empty((nch, steps if store_h else 1, rows, u), dt)
    tlen = steps if full else 1
    cst = np.empty((nch, tlen, rows, u), dt) if cell == "lstm" else hst
    if cell == "lstm":
        gates = np.empty((nch, tlen, rows, g), dt)  # every path writes a step's block first
    elif cell == "gru":
        gates = np.empty((nch, tlen, rows, 4 * u), dt)
    else:
        gates = hst
    rb = rk[:1]
    if cell == "gru":
        rb = np.zeros((3, u), dt) if bias is None else np.ascontiguousarray(bias[1]).reshape(3, u)

    r = RNNCache()
    r.cell, r.xc, r.kernel, r.rk, r.rb, r.xp = cell, xc, kernel, rk, rb, xp
    r.mask, r.rmask, r.dmask, r.has_rd = m, rmask, dmask, has_rd
    r.act, r.ract, r.exact, r.one, r.fast, r.fused = act, ract, exact, one, fast, fused
    r.full, r.store_h, r.h, r.c, r.hm = full, store_h, h, c, hm
    r.hst, r.cst, r.gates = hst, cst, gates

    def chunk(k):
        # the input projection of all the chunk's steps is one product (in the chunk's thread)
        np.matmul(xc[k].reshape(-1, nin), kernel, out=xp[k].reshape(-1, g))
        if xbias is not None:
            xp[k] += xbias
        _forward_chunk(r, k)

    with _blas_for(nch):
        _run_chunks(chunk, nch)
    zero_out = bool(zero_output_for_mask) and mask is not None
    if seq:
        y = _from_chunks(hst * m[..., None] if zero_out else hst, False)
    else:
        y = (h * m[:, -1, :, None] if zero_out else h).reshape(nb, u)
    if not train:
        return y, None
    r.xp = r.h = r.c = r.hm = None  # forward-only buffers: not kept until backward
    r.rev, r.seq, r.zero_out = rev, seq, zero_out
    return y, r


def _backward_chunk(c, k, rkt, dyt, dxp, drec, exact, one):
    """Backpropagation through time for chunk k (one jitted call or a BLAS product per step)."""
    _, steps, nb, u = c.hst.shape
    dt = c.hst.dtype
    m = c.mask[k]
    rmk = c.rmask[k] if c.has_rd else c.rmask
    seq = c.seq
    fused = c.fused
    dh = np.zeros((nb, u), dt)
    dhr = np.zeros((nb, u), dt)
    ng = dxp.shape[3] // u
    dd = np.empty((nb, ng, u), dt)
    dy = dyt[k]
    if c.fast and c.cell == "gru":
        dr, dk, gk, hs, has_rd = drec[k], dxp[k], c.gates[k], c.hst[k], c.has_rd
        if fused:
            _gru_bseq32(dr, dk, rkt, dh, dhr, m, rmk, has_rd, dy, seq, gk, hs, _gemm())
            return
        for s in range(steps - 1, -1, -1):
            _gru_bstep32(
                dr[s],
                dk[s],
                dh,
                dhr,
                m[s],
                rmk,
                has_rd,
                dy[s if seq else 0],
                seq or s == steps - 1,
                gk[s],
                hs[max(s - 1, 0)],
                s > 0,
            )
            if s:
                np.matmul(dr[s], rkt, out=dhr)
        return
    if c.fast:
        dc = np.zeros((nb, u), dt)
        dk, gk, cs, has_rd = dxp[k], c.gates[k], c.cst[k], c.has_rd
        if fused:
            _lstm_bseq32(dk, rkt, dh, dc, dhr, m, rmk, has_rd, dy, seq, gk, cs, _gemm())
            return
        for s in range(steps - 1, -1, -1):
            _lstm_bstep32(
                dk[s],
                dh,
                dc,
                dhr,
                m[s],
                rmk,
                has_rd,
                dy[s if seq else 0],
                seq or s == steps - 1,
                gk[s],
                cs[s],
                cs[max(s - 1, 0)],
                s > 0,
            )
            if s:
                np.matmul(dk[s], rkt, out=dhr)
        return
    if c.cell == "lstm":
        dc = np.zeros((nb, u), dt)
        tc = np.empty((nb, 1, u), dt)
        dtc = np.empty((nb, 1, u), dt)
        if fused:
            _lstm_bseq(
                dxp[k],
                rkt,
                dh,
                dc,
                dhr,
                tc,
                dtc,
                dd,
                m,
                rmk,
                c.has_rd,
                c.act,
                c.ract,
                exact,
                one,
                dy,
                seq,
                c.gates[k],
                c.cst[k],
            )
            return
        d4 = dxp[k].reshape(steps, nb, 4, u)
        g4 = c.gates[k].reshape(steps, nb, 4, u)
        cs = c.cst[k]
        for s in range(steps - 1, -1, -1):
            _lstm_bstep(
                d4[s],
                dh,
                dc,
                dhr,
                tc,
                dtc,
                dd,
                m[s],
                rmk,
                c.has_rd,
                c.act,
                c.ract,
                exact,
                one,
                dy[s if seq else 0],
                seq or s == steps - 1,
                g4[s],
                cs[s],
                cs[max(s - 1, 0)],
                s > 0,
            )
            if s:
                np.matmul(dxp[k, s], rkt, out=dhr)
    elif c.cell == "gru":
        if fused:
            _gru_bseq(
                drec[k],
                dxp[k],
                rkt,
                dh,
                dhr,
                dd,
                m,
                rmk,
                c.has_rd,
                c.act,
                c.ract,
                exact,
                one,
                dy,
                seq,
                c.gates[k],
                c.hst[k],
            )
            return
        r4 = drec[k].reshape(steps, nb, 3, u)
        d4 = dxp[k].reshape(steps, nb, 3, u)
        g4 = c.gates[k].reshape(steps, nb, 4, u)
        hs = c.hst[k]
        for s in range(steps - 1, -1, -1):
            _gru_bstep(
                r4[s],
                d4[s],
                dh,
                dhr,
                dd,
                m[s],
                rmk,
                c.has_rd,
                c.act,
                c.ract,
                exact,
                one,
                dy[s if seq else 0],
                seq or s == steps - 1,
                g4[s],
                hs[max(s - 1, 0)],
                s > 0,
            )
            if s:
                np.matmul(drec[k, s], rkt, out=dhr)
    else:
        if fused:
            _simple_bseq(dxp[k], rkt, dh, dhr, dd, m, rmk, c.has_rd, c.act, one, dy, seq, c.hst[k])
            return
        d3 = dxp[k].reshape(steps, nb, 1, u)
        h3 = c.hst[k].reshape(steps, nb, 1, u)
        for s in range(steps - 1, -1, -1):
            _simple_bstep(
                d3[s],
                dh,
                dhr,
                dd,
                m[s],
                rmk,
                c.has_rd,
                c.act,
                one,
                dy[s if seq else 0],
                seq or s == steps - 1,
                h3[s],
            )
            if s:
                np.matmul(dxp[k, s], rkt, out=dhr)


def rnn_backward(cache: RNNCache, dy, need_dx: bool = True, out=None):
    """Gradients from ``rnn_forward``'s cache and dL/dy. Returns (dx or None, dkernel,
    drecurrent_kernel, dbias) with dbias shaped like the layer's bias ((2, 3u) for GRU).
    ``out``: None, or (dkernel, drecurrent_kernel, dbias) arrays (any None) that the weight
    gradients are written into."""
    c = cache
    nch, steps, rows, u = c.hst.shape
    nin = c.xc.shape[-1]
    g = c.rk.shape[1]
    dt = c.hst.dtype
    one = dt.type(1)
    exact = bool(dt != np.float32)
    dy = np.asarray(dy, dtype=dt)
    if c.seq:
        dyt = _to_chunks(dy, nch, False)  # y is already in processing order
        if c.zero_out:
            dyt *= c.mask[..., None]
    else:
        dyt = dy.reshape(nch, 1, rows, u)
        if c.zero_out:
            dyt = dyt * c.mask[:, -1:, :, None]
        dyt = np.ascontiguousarray(dyt)
    rkt = np.ascontiguousarray(c.rk.T)
    dxp = np.empty((nch, steps, rows, g), dt)
    gru = c.cell == "gru"
    drec = np.empty((nch, steps, rows, g), dt) if gru else dxp
    # LSTM / SimpleRNN: the kernel, recurrent-kernel and bias gradients all multiply dxp, so
    # they are ONE product [x_t, h_(t-1), 1]^T @ dxp per chunk (one pass over dxp, and a taller
    # product runs nearer BLAS's peak than three short ones). GRU's recurrent part has its own.
    width = nin if gru else nin + u + 1
    dw = np.empty((nch, width, g), dt)
    drk = np.empty((nch, u, g), dt) if gru else None
    dxc = np.empty((nch, steps * rows, nin), dt) if need_dx else None

    def chunk(k):
        # BPTT, then the chunk's share of the weight and input gradients
        _backward_chunk(c, k, rkt, dyt, dxp, drec, exact, one)
        dxk = dxp[k].reshape(-1, g)
        # the state that multiplied the recurrent kernel at step s is h[s - 1] (zero at s = 0)
        hprev = c.hst[k, :-1]
        if c.has_rd:
            hprev = hprev * c.rmask[k]
        if gru:
            np.matmul(c.xc[k].reshape(-1, nin).T, dxk, out=dw[k])
            np.matmul(hprev.reshape(-1, u).T, drec[k, 1:].reshape(-1, g), out=drk[k])
        else:
            z = np.empty((steps, rows, width), dt)
            z[..., :nin] = c.xc[k]
            z[0, :, nin:-1] = 0
            z[1:, :, nin:-1] = hprev
            z[..., -1] = 1
            np.matmul(z.reshape(-1, width).T, dxk, out=dw[k])
        if need_dx:
            np.matmul(dxk, c.kernel.T, out=dxc[k])

    with _blas_for(nch):  # the column sums too: a threaded product would wake OpenBLAS's spinner
        _run_chunks(chunk, nch)
        if gru:
            dbias = np.stack([_column_sums(dxp.reshape(-1, g)), _column_sums(drec.reshape(-1, g))])
    dw = dw.sum(axis=0)
    if gru:
        dkernel, drk = dw, drk.sum(axis=0)
    else:
        dkernel, drk, dbias = dw[:nin], dw[nin:-1], dw[-1]
    dkernel, drk = gradient_into(out, 0, dkernel), gradient_into(out, 1, drk)
    dbias = gradient_into(out, 2, dbias)
    dx = None
    if need_dx:
        dx = _from_chunks(dxc.reshape(nch, steps, rows, nin), c.rev)
        if c.dmask is not None:
            dx *= c.dmask
    return dx, dkernel, drk, dbias


# ----------------------------------------------------------------------------- Bidirectional


def reverse_time(y):
    """y[:, ::-1] as a contiguous array (aligns a backward RNN's sequence with the input)."""
    return np.ascontiguousarray(y[:, ::-1])


def merge_forward(mode: str, a, b):
    """Bidirectional's merge of the forward (a) and backward (b) outputs over the last axis."""
    if mode == "concat":
        return np.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "ave":
        return (a + b) * a.dtype.type(0.5)
    if mode == "mul":
        return a * b
    raise ValueError(f"unknown merge_mode {mode!r}")


def merge_backward(mode: str, a, b, dy):
    """Gradients (da, db) of ``merge_forward(mode, a, b)`` for dL/dy."""
    if mode == "concat":
        n = a.shape[-1]
        return np.ascontiguousarray(dy[..., :n]), np.ascontiguousarray(dy[..., n:])
    if mode == "sum":
        return dy, dy
    if mode == "ave":
        half = dy * dy.dtype.type(0.5)
        return half, half
    if mode == "mul":
        return dy * b, dy * a
    raise ValueError(f"unknown merge_mode {mode!r}")
