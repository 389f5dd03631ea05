"""Recurrent layers (LSTM, GRU, SimpleRNN) on the CPU: forward and backpropagation through time.

Layout (Keras's): x is (batch, time, features); a cell's kernel is (in, G) and its recurrent
kernel (units, G) with G = 4u (LSTM gates i, f, c, o), 3u (GRU gates z, r, h) or u (SimpleRNN).

How the work is split (measured on the project's 2-core AVX-512 machine, see ``rnn_forward``):

* The input projection of ALL time steps is ONE BLAS product ``x.reshape(-1, in) @ kernel +
  bias``; in backward the kernel, recurrent-kernel and input gradients are one BLAS product each.
* Only the recurrence loops over time, inside one Numba kernel per layer call. The batch is split
  into one chunk per thread (``prange``); each chunk runs the whole sequence on its own rows, so
  the threads never synchronise per step. The per-step product ``h @ recurrent_kernel`` is a
  hand-vectorised loop (two rows x eight k at a time, the contiguous axis innermost), fused with
  the gate math. Calling numpy's matmul per step from Python measured slower at batch 32 (and
  3x slower at batch 1, where the per-call overhead dominates).
* tanh and sigmoid are a float32 rational approximation (Eigen's, error < 3e-7) that LLVM
  vectorises; numba's scalar ``np.tanh`` is 50x slower here (no SVML). float64 uses ``np.tanh``
  exactly, so finite-difference gradient checks in float64 see the true function.

Masking (Keras semantics): at a masked step the states are kept and the output is the previous
output (or zero with ``zero_output_for_mask``, as Bidirectional uses with return_sequences);
backward passes the gradient of the kept states straight through.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

__all__ = ["rnn_backward", "rnn_forward", "RNN_ACTIVATIONS"]

#: activations a recurrent cell can use (codes passed to the kernels)
RNN_ACTIVATIONS = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
_CELLS = {"lstm": (0, 4), "gru": (1, 3), "simple_rnn": (2, 1)}  # code, gates per unit
_OPTS = {"cache": True, "fastmath": {"contract"}, "error_model": "numpy", "nogil": True}
#: below this many rows per thread a single thread runs the sequence (a parallel launch costs
#: about 30 us, more than a small batch's whole recurrence)
_MIN_ROWS_PER_THREAD = 4


# ----------------------------------------------------------------------------- scalar helpers


def fast_tanh(x):
    """tanh; vectorisable float32 approximation inside jitted code, exact for float64."""
    return np.tanh(x)


@overload(fast_tanh, inline="always")
def _fast_tanh_impl(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:

        def impl(x):
            # Eigen's rational approximation of tanh on [-7.9053, 7.9053] (max error ~3e-7)
            lim = np.float32(7.90531110763549805)
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
            r = p / q
            return x if abs(x) < np.float32(0.0004) else r

        return impl
    return lambda x: np.tanh(x)


def _lit(like, value):
    """``value`` as a float of ``like``'s type (numba types a bare literal as float64, which
    would turn float32 kernels into float64 ones)."""
    return value


@overload(_lit, inline="always")
def _lit_impl(like, value):
    if isinstance(like, types.Float) and like.bitwidth == 32:
        return lambda like, value: np.float32(value)
    return lambda like, value: np.float64(value)


@njit(inline="always")
def _act(code, v):
    """The activation with this code at v (code: 0 linear, 1 relu, 2 sigmoid, 3 tanh)."""
    if code == 3:
        return fast_tanh(v)
    if code == 2:
        # sigmoid(x) = (1 + tanh(x / 2)) / 2: exact, and it reuses the vectorised tanh
        half = _lit(v, 0.5)
        return half * fast_tanh(half * v) + half
    if code == 1:
        return v if v > 0 else _lit(v, 0.0)
    return v


@njit(inline="always")
def _dact(code, y):
    """d activation / d x written in terms of the activation's output y."""
    one = _lit(y, 1.0)
    if code == 3:
        return one - y * y
    if code == 2:
        return y * (one - y)
    if code == 1:
        return one if y > 0 else _lit(y, 0.0)
    return one


@njit(**_OPTS)
def _act_seg(v, j0, j1, code):
    """v[j0:j1] = activation(v[j0:j1]) in place; the code test sits outside the loops so that
    each loop vectorises."""
    if code == 3:
        for j in range(j0, j1):
            v[j] = _act(3, v[j])
    elif code == 2:
        for j in range(j0, j1):
            v[j] = _act(2, v[j])
    elif code == 1:
        for j in range(j0, j1):
            v[j] = _act(1, v[j])


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


# ----------------------------------------------------------------------------- forward


@njit(**_OPTS)
def _fwd_chunk(
    cell, xp, rk, rbias, mask, rmask, has_rd, rev, seq, zero_out, act, ract, train,
    r0, r1, out, hst, cst, gates, hp,
):
    """Run the whole sequence for batch rows r0:r1.

    xp: (B, T, G) input projection (with the input bias) in input time order. Written, in
    processing order s: out (B, T or 1, u), and when ``train``: hst (states), cst (LSTM cells),
    gates (activated gates; GRU: z, r, hh and the recurrent h-part), and in input time order
    hp (the dropout-masked previous state that multiplied the recurrent kernel).
    """
    _, steps, _ = xp.shape
    u = rk.shape[0]
    nb = r1 - r0
    dt = xp.dtype
    h = np.zeros((nb, u), dt)
    c = np.zeros((nb, u), dt)
    hm = np.zeros((nb, u), dt)
    tmp = np.empty((nb, u), dt)
    acc = np.empty((nb, gates.shape[2] if train else 4 * u), dt)
    idx = np.empty(nb, np.int64)
    ng = rk.shape[1]
    for s in range(steps):
        tt = steps - 1 - s if rev else s
        n = 0
        for b in range(nb):
            if mask[r0 + b, tt]:
                idx[n] = b
                n += 1
            elif train:
                for k in range(u):
                    hp[r0 + b, tt, k] = 0
        for i in range(n):
            b = idx[i]
            if cell == 1:
                for j in range(ng):
                    acc[b, j] = rbias[j]
            else:
                for j in range(ng):
                    acc[b, j] = xp[r0 + b, tt, j]
            if has_rd:
                for k in range(u):
                    hm[b, k] = h[b, k] * rmask[r0 + b, k]
            else:
                for k in range(u):
                    hm[b, k] = h[b, k]
            if train:
                for k in range(u):
                    hp[r0 + b, tt, k] = hm[b, k]
        _mm_acc(idx, n, hm, rk, acc)
        for i in range(n):
            b = idx[i]
            a = acc[b]
            if cell == 0:  # LSTM: i, f, c, o
                _act_seg(a, 0, 2 * u, ract)
                _act_seg(a, 2 * u, 3 * u, act)
                _act_seg(a, 3 * u, 4 * u, ract)
                for j in range(u):
                    cj = a[u + j] * c[b, j] + a[j] * a[2 * u + j]
                    c[b, j] = cj
                    tmp[b, j] = cj
                _act_seg(tmp[b], 0, u, act)
                for j in range(u):
                    h[b, j] = a[3 * u + j] * tmp[b, j]
            elif cell == 1:  # GRU (reset_after): z, r, hh, then the recurrent h-part
                for j in range(u):
                    a[3 * u + j] = a[2 * u + j]
                    a[j] += xp[r0 + b, tt, j]
                    a[u + j] += xp[r0 + b, tt, u + j]
                _act_seg(a, 0, 2 * u, ract)
                for j in range(u):
                    a[2 * u + j] = xp[r0 + b, tt, 2 * u + j] + a[u + j] * a[3 * u + j]
                _act_seg(a, 2 * u, 3 * u, act)
                for j in range(u):
                    z = a[j]
                    h[b, j] = z * h[b, j] + (_lit(z, 1.0) - z) * a[2 * u + j]
            else:  # SimpleRNN
                _act_seg(a, 0, u, act)
                for j in range(u):
                    h[b, j] = a[j]
            if train:
                for j in range(gates.shape[2]):
                    gates[r0 + b, s, j] = a[j]
        so = s if seq else 0
        for b in range(nb):
            if zero_out and not mask[r0 + b, tt]:
                for j in range(u):
                    out[r0 + b, so, j] = 0
            else:
                for j in range(u):
                    out[r0 + b, so, j] = h[b, j]
            if train:
                for j in range(u):
                    hst[r0 + b, s, j] = h[b, j]
                if cell == 0:
                    for j in range(u):
                        cst[r0 + b, s, j] = c[b, j]


@njit(parallel=True, **_OPTS)
def _fwd_par(
    nchunk, cell, xp, rk, rbias, mask, rmask, has_rd, rev, seq, zero_out, act, ract, train,
    out, hst, cst, gates, hp,
):
    nrow = xp.shape[0]
    for ch in prange(nchunk):
        _fwd_chunk(
            cell, xp, rk, rbias, mask, rmask, has_rd, rev, seq, zero_out, act, ract, train,
            ch * nrow // nchunk, (ch + 1) * nrow // nchunk, out, hst, cst, gates, hp,
        )


@njit(**_OPTS)
def _fwd_ser(
    nchunk, cell, xp, rk, rbias, mask, rmask, has_rd, rev, seq, zero_out, act, ract, train,
    out, hst, cst, gates, hp,
):
    _fwd_chunk(
        cell, xp, rk, rbias, mask, rmask, has_rd, rev, seq, zero_out, act, ract, train,
        0, xp.shape[0], out, hst, cst, gates, hp,
    )


# ----------------------------------------------------------------------------- backward


@njit(**_OPTS)
def _bwd_chunk(
    cell, rkt, mask, rmask, has_rd, rev, seq, zero_out, act, ract, r0, r1,
    dy, hst, cst, gates, dxp, drec,
):
    """Backpropagation through time for batch rows r0:r1.

    dy: gradient of the outputs (processing order; (B, 1, u) when not ``seq``). Writes dxp, the
    gradient of the input projection, and for GRU drec, the gradient of ``hm @ rk + rbias``
    (for LSTM and SimpleRNN the two are equal and drec is not written), in input time order.
    """
    _, steps, u = hst.shape
    nb = r1 - r0
    ng = rkt.shape[0]
    dt = hst.dtype
    dh = np.zeros((nb, u), dt)
    dc = np.zeros((nb, u), dt)
    dhr = np.empty((nb, u), dt)
    tc = np.empty(u, dt)
    dz = np.empty((nb, ng), dt)
    idx = np.empty(nb, np.int64)
    for s in range(steps - 1, -1, -1):
        tt = steps - 1 - s if rev else s
        n = 0
        for b in range(nb):
            m = mask[r0 + b, tt]
            if m or not zero_out:
                if seq:
                    for j in range(u):
                        dh[b, j] += dy[r0 + b, s, j]
                elif s == steps - 1:
                    for j in range(u):
                        dh[b, j] += dy[r0 + b, 0, j]
            if m:
                idx[n] = b
                n += 1
            else:
                for j in range(ng):
                    dxp[r0 + b, tt, j] = 0
                if cell == 1:
                    for j in range(ng):
                        drec[r0 + b, tt, j] = 0
        for i in range(n):
            b = idx[i]
            g = gates[r0 + b, s]
            if cell == 0:
                for j in range(u):
                    tc[j] = cst[r0 + b, s, j]
                _act_seg(tc, 0, u, act)
                for j in range(u):
                    ig = g[j]
                    fg = g[u + j]
                    gg = g[2 * u + j]
                    og = g[3 * u + j]
                    cp = cst[r0 + b, s - 1, j] if s > 0 else _lit(ig, 0.0)
                    dhj = dh[b, j]
                    dcj = dc[b, j] + dhj * og * _dact(act, tc[j])
                    dz[b, j] = dcj * gg * _dact(ract, ig)
                    dz[b, u + j] = dcj * cp * _dact(ract, fg)
                    dz[b, 2 * u + j] = dcj * ig * _dact(act, gg)
                    dz[b, 3 * u + j] = dhj * tc[j] * _dact(ract, og)
                    dc[b, j] = dcj * fg
                    dh[b, j] = 0
                    dhr[b, j] = 0
                for j in range(ng):
                    dxp[r0 + b, tt, j] = dz[b, j]
            elif cell == 1:
                for j in range(u):
                    z = g[j]
                    r = g[u + j]
                    hh = g[2 * u + j]
                    rh = g[3 * u + j]
                    hprev = hst[r0 + b, s - 1, j] if s > 0 else _lit(z, 0.0)
                    dhj = dh[b, j]
                    dzz = dhj * (hprev - hh) * _dact(ract, z)
                    dah = dhj * (_lit(z, 1.0) - z) * _dact(act, hh)
                    drr = dah * rh * _dact(ract, r)
                    dxp[r0 + b, tt, j] = dzz
                    dxp[r0 + b, tt, u + j] = drr
                    dxp[r0 + b, tt, 2 * u + j] = dah
                    dz[b, j] = dzz
                    dz[b, u + j] = drr
                    dz[b, 2 * u + j] = dah * r
                    dh[b, j] = dhj * z
                    dhr[b, j] = 0
                for j in range(ng):
                    drec[r0 + b, tt, j] = dz[b, j]
            else:
                for j in range(u):
                    dz[b, j] = dh[b, j] * _dact(act, hst[r0 + b, s, j])
                    dh[b, j] = 0
                    dhr[b, j] = 0
                for j in range(ng):
                    dxp[r0 + b, tt, j] = dz[b, j]
        _mm_acc(idx, n, dz, rkt, dhr)
        for i in range(n):
            b = idx[i]
            if has_rd:
                for j in range(u):
                    dh[b, j] += dhr[b, j] * rmask[r0 + b, j]
            else:
                for j in range(u):
                    dh[b, j] += dhr[b, j]


@njit(parallel=True, **_OPTS)
def _bwd_par(
    nchunk, cell, rkt, mask, rmask, has_rd, rev, seq, zero_out, act, ract,
    dy, hst, cst, gates, dxp, drec,
):
    nrow = hst.shape[0]
    for ch in prange(nchunk):
        _bwd_chunk(
            cell, rkt, mask, rmask, has_rd, rev, seq, zero_out, act, ract,
            ch * nrow // nchunk, (ch + 1) * nrow // nchunk, dy, hst, cst, gates, dxp, drec,
        )


@njit(**_OPTS)
def _bwd_ser(
    nchunk, cell, rkt, mask, rmask, has_rd, rev, seq, zero_out, act, ract,
    dy, hst, cst, gates, dxp, drec,
):
    _bwd_chunk(
        cell, rkt, mask, rmask, has_rd, rev, seq, zero_out, act, ract,
        0, hst.shape[0], dy, hst, cst, gates, dxp, drec,
    )


# ----------------------------------------------------------------------------- op functions


def _chunks(rows: int) -> int:
    return max(1, min(numba.get_num_threads(), rows // _MIN_ROWS_PER_THREAD))


def _column_sums(a2d):
    # one BLAS product: numpy's axis-0 sum is several times slower on these shapes
    return np.ones(a2d.shape[0], dtype=a2d.dtype) @ a2d


def _dropout_mask(shape, rate, rng, dtype):
    keep = rng.random(shape, dtype=np.float32) >= rate
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - rate))


class RNNCache:
    """What ``rnn_backward`` needs from ``rnn_forward`` (opaque to layers)."""

    __slots__ = (
        "cell", "x", "kernel", "rk", "mask", "rmask", "dmask", "has_rd", "rev", "seq",
        "zero_out", "act", "ract", "hst", "cst", "gates", "hp",
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
    code, _ = _CELLS[cell]
    act = RNN_ACTIVATIONS[activation]
    ract = RNN_ACTIVATIONS[recurrent_activation]
    dt = kernel.dtype
    x = np.ascontiguousarray(x, dtype=dt)
    nb, steps, nin = x.shape
    u = recurrent_kernel.shape[0]
    rk = np.ascontiguousarray(recurrent_kernel)
    dmask = None
    if training and dropout > 0.0:
        dmask = _dropout_mask((nb, 1, nin), dropout, rng, dt)
        x = x * dmask
    has_rd = bool(training and recurrent_dropout > 0.0)
    rmask = _dropout_mask((nb, u), recurrent_dropout, rng, dt) if has_rd else np.ones((1, 1), dt)
    xp = x.reshape(-1, nin) @ kernel
    rbias = np.zeros(1, dt)
    if bias is not None:
        if code == 1:
            xp += bias[0]
            rbias = np.ascontiguousarray(bias[1])
        else:
            xp += bias
    elif code == 1:
        rbias = np.zeros(3 * u, dt)
    xp = xp.reshape(nb, steps, -1)
    if mask is None:
        m = np.ones((nb, steps), np.uint8)
    else:
        m = np.ascontiguousarray(mask, dtype=np.bool_).view(np.uint8)
    seq = bool(return_sequences)
    out = np.empty((nb, steps if seq else 1, u), dt)
    if training:
        hst = np.empty((nb, steps, u), dt)
        cst = np.empty((nb, steps, u), dt) if code == 0 else np.empty((1, 1, 1), dt)
        gates = np.empty((nb, steps, 4 * u if code == 1 else xp.shape[2]), dt)
        hp = np.empty((nb, steps, u), dt)
    else:
        hst = cst = gates = hp = np.empty((1, 1, 1), dt)
    nchunk = _chunks(nb)
    run = _fwd_par if nchunk > 1 else _fwd_ser
    run(
        nchunk, code, xp, rk, rbias, m, rmask, has_rd, bool(go_backwards), seq,
        bool(zero_output_for_mask), act, ract, bool(training), out, hst, cst, gates, hp,
    )
    y = out if seq else out.reshape(nb, u)
    if not training:
        return y, None
    cache = RNNCache()
    cache.cell, cache.x, cache.kernel, cache.rk = code, x, kernel, rk
    cache.mask, cache.rmask, cache.dmask, cache.has_rd = m, rmask, dmask, has_rd
    cache.rev, cache.seq, cache.zero_out = bool(go_backwards), seq, bool(zero_output_for_mask)
    cache.act, cache.ract = act, ract
    cache.hst, cache.cst, cache.gates, cache.hp = hst, cst, gates, hp
    return y, cache


def rnn_backward(cache: RNNCache, dy, need_dx: bool = True):
    """Gradients from ``rnn_forward``'s cache and dL/dy. Returns (dx or None, dkernel,
    drecurrent_kernel, dbias) with dbias shaped like the layer's bias ((2, 3u) for GRU)."""
    c = cache
    nb, steps, nin = c.x.shape
    u = c.rk.shape[0]
    dt = c.hst.dtype
    dy = np.ascontiguousarray(dy, dtype=dt).reshape(nb, steps if c.seq else 1, u)
    ng = c.rk.shape[1]
    dxp = np.empty((nb, steps, ng), dt)
    drec = np.empty((nb, steps, ng), dt) if c.cell == 1 else dxp
    rkt = np.ascontiguousarray(c.rk.T)
    nchunk = _chunks(nb)
    run = _bwd_par if nchunk > 1 else _bwd_ser
    run(
        nchunk, c.cell, rkt, c.mask, c.rmask, c.has_rd, c.rev, c.seq, c.zero_out, c.act, c.ract,
        dy, c.hst, c.cst, c.gates, dxp, drec,
    )
    dxp2 = dxp.reshape(-1, ng)
    drec2 = drec.reshape(-1, ng)
    dkernel = c.x.reshape(-1, nin).T @ dxp2
    drk = c.hp.reshape(-1, u).T @ drec2
    if c.cell == 1:
        dbias = np.stack([_column_sums(dxp2), _column_sums(drec2)])
    else:
        dbias = _column_sums(dxp2)
    dx = None
    if need_dx:
        dx = (dxp2 @ c.kernel.T).reshape(nb, steps, nin)
        if c.dmask is not None:
            dx *= c.dmask
    return dx, dkernel, drk, dbias
