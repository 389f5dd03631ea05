"""The recurrent cells' per-step kernels: one time step's gate math for a block of rows, forward
(``<cell>_step``) and backward (``<cell>_bstep``), the float32 tanh/sigmoid variants
(``<cell>_step32``, ``<cell>_bstep32``) and the helpers they share. How they are driven, and why
they are written as they are: the package's docstring (``recurrent/__init__.py``).

Every step and sequence kernel takes the cell's settings as one tuple ``cfg = (rmask, has_rd,
act, ract, exact, one)``: the recurrent-dropout mask and whether it applies, the activation and
recurrent-activation codes (``RNN_ACTIVATIONS``), exact (float64) activations or the float32
approximations, and 1 in the arrays' dtype. Numba passes the tuple as a struct, at no cost.
The backward step kernels take the whole sequence's arrays (time first) and the step ``s``, and
take their step's slices themselves; the names in their docstrings are those slices.
"""

from __future__ import annotations

import numpy as np
from numba import njit

JIT_OPTIONS = {"cache": True, "fastmath": {"contract"}, "error_model": "numpy", "nogil": True}


# ----------------------------------------------------------------------------- activations


@njit(**JIT_OPTIONS)
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
    for g in range(g0, g1):
        for j in range(u):
            v[b, g, j] = _tanh32(v[b, g, j] * sc) * sc + sh


@njit(**JIT_OPTIONS)
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


@njit(**JIT_OPTIONS)
def mm_acc(idx, n, a, bm, out):
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


@njit(**JIT_OPTIONS)
def active_rows(ms, idx):
    """idx[:n] = the rows whose mask ms is set; returns n."""
    n = 0
    for b in range(ms.shape[0]):
        if ms[b]:
            idx[n] = b
            n += 1
    return n


@njit(**JIT_OPTIONS)
def _next_hm(b, u, h, hm, cfg):
    """hm[b] = h[b] * the recurrent-dropout mask: what multiplies the recurrent kernel next."""
    rmask, has_rd, act, ract, exact, one = cfg
    if has_rd:
        for j in range(u):
            hm[b, j] = h[b, j] * rmask[b, j]
    else:
        for j in range(u):
            hm[b, j] = h[b, j]


@njit(**JIT_OPTIONS)
def _take_dh(b, u, dh, dhr, cfg, dys, add_dy):
    """dh[b] += the gradient back through the recurrent kernel (times the recurrent-dropout
    mask) and, when ``add_dy``, the gradient of this step's output."""
    rmask, has_rd, act, ract, exact, one = cfg
    if has_rd:
        for j in range(u):
            dh[b, j] += dhr[b, j] * rmask[b, j]
    else:
        for j in range(u):
            dh[b, j] += dhr[b, j]
    if add_dy:
        for j in range(u):
            dh[b, j] += dys[b, j]


@njit(**JIT_OPTIONS)
def _step_inputs(mask, dyt, seq, s):
    """A backward step's (row mask, output gradient, whether to add it): the output gradient is
    dyt[s] for a sequence output, else dyt[0], which belongs to the last step only."""
    return mask[s], dyt[s if seq else 0], seq or s == mask.shape[0] - 1


# ----------------------------------------------------------------------------- LSTM


@njit(**JIT_OPTIONS)
def lstm_step(z3, xs, h, c, hm, tmp, ms, cfg, hs, cs):
    """One LSTM step. z3 (B, 4, u) holds hm @ recurrent_kernel and becomes the activated gates
    i, f, c~, o (the backward cache when z3 is gates[s]); xs (B, 4, u) is the step's input
    projection. Updates h, c and hm; hs[:] = h, cs[:] = c (masked rows keep their states)."""
    rmask, has_rd, act, ract, exact, one = cfg
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
            _next_hm(b, u, h, hm, cfg)
        for j in range(u):
            hs[b, j] = h[b, j]
            cs[b, j] = c[b, j]


@njit(**JIT_OPTIONS)
def lstm_bstep(dxp, dh, dc, dhr, tc, dtc, dd, mask, cfg, dyt, seq, gates, cst, s):
    """One backward LSTM step: takes dhr (the gradient back through the recurrent kernel from
    the next step) and writes dz3 (B, 4, u), the gradient of the gate pre-activations (zero on
    masked rows). g3: the step's gates; cs, cps: its cell state and the previous one."""
    rmask, has_rd, act, ract, exact, one = cfg
    nb, u = dh.shape
    dz3, g3 = dxp[s].reshape(nb, 4, u), gates[s].reshape(nb, 4, u)
    ms, dys, add_dy = _step_inputs(mask, dyt, seq, s)
    cs, cps, has_prev = cst[s], cst[max(s - 1, 0)], s > 0
    zero = one - one
    cpf = one if has_prev else zero
    for b in range(nb):
        m = ms[b]
        _take_dh(b, u, dh, dhr, cfg, dys, add_dy)
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


@njit(inline="always", **JIT_OPTIONS)
def _tanh32(x):
    """Eigen's float32 rational tanh (max error 3e-7); NaN in, NaN out.

    The clamp keeps x unless a comparison holds, so a NaN passes through it; that is also the
    operand order of x86's min / max instructions (one instruction each instead of compares
    and blends: 12 % faster alone). The clamp ``x if x < lim else lim`` turned NaN into
    tanh(7.9) = 1, so an LSTM whose weights had become NaN gave finite outputs."""
    lim = _F32(7.90531110763549805)
    xc = lim if x > lim else x
    xc = -lim if xc < -lim else xc
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


@njit(inline="always", **JIT_OPTIONS)
def _sigmoid32(x):
    half = _F32(0.5)
    return half * _tanh32(half * x) + half


@njit(**JIT_OPTIONS)
def lstm_step32(z, xs, h, c, hm, ms, cfg, hs, cs):
    """``lstm_step`` for float32, tanh and sigmoid; z and xs are (B, 4u)."""
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
            _next_hm(b, u, h, hm, cfg)
            for j in range(u):
                csr[j] = cr[j]
        else:
            for j in range(u):
                hsr[j] = hr[j]
                csr[j] = cr[j]


@njit(**JIT_OPTIONS)
def lstm_bstep32(dxp, dh, dc, dhr, mask, cfg, dyt, seq, gates, cst, s):
    """``lstm_bstep`` for float32, tanh and sigmoid; dz and g are (B, 4u)."""
    rmask, has_rd, act, ract, exact, one = cfg
    dz, g = dxp[s], gates[s]
    ms, dys, add_dy = _step_inputs(mask, dyt, seq, s)
    cs, cps, has_prev = cst[s], cst[max(s - 1, 0)], s > 0
    nb, u = dh.shape
    zero = _F32(0)
    one = _F32(1)
    cpf = one if has_prev else zero
    for b in range(nb):
        _take_dh(b, u, dh, dhr, cfg, dys, add_dy)
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


@njit(**JIT_OPTIONS)
def gru_step(z3, xs, h, rb, hm, g3, ms, cfg, hs):
    """One GRU (reset_after) step. z3 (B, 3, u) = hm @ recurrent_kernel; rb (3, u) the
    recurrent bias; g3 (B, 4, u) receives z, r, hh and the recurrent h-part (the backward
    cache when it is gates[s]). Updates h and hm; hs[:] = h."""
    rmask, has_rd, act, ract, exact, one = cfg
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
            _next_hm(b, u, h, hm, cfg)
        for j in range(u):
            hs[b, j] = h[b, j]


@njit(**JIT_OPTIONS)
def gru_bstep(drec, dxp, dh, dhr, dd, mask, cfg, dyt, seq, gates, hst, s):
    """One backward GRU step: dx3 (B, 3, u) = gradient of the input projection, dz3 (B, 3, u)
    = gradient of hm @ recurrent_kernel + recurrent bias; hps: the previous state."""
    rmask, has_rd, act, ract, exact, one = cfg
    nb, u = dh.shape
    dz3, dx3 = drec[s].reshape(nb, 3, u), dxp[s].reshape(nb, 3, u)
    g3 = gates[s].reshape(nb, 4, u)
    ms, dys, add_dy = _step_inputs(mask, dyt, seq, s)
    hps, has_prev = hst[max(s - 1, 0)], s > 0
    zero = one - one
    hpf = one if has_prev else zero
    for b in range(nb):
        m = ms[b]
        _take_dh(b, u, dh, dhr, cfg, dys, add_dy)
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


@njit(**JIT_OPTIONS)
def gru_step32(z, xs, h, rb, hm, g, ms, cfg, hs):
    """``gru_step`` for float32, tanh and sigmoid; z and xs are (B, 3u), g is (B, 4u).

    The gate rows are slices of the 1-D row views (``z[b][u : 2 * u]``): numba's
    ``reshape(3, u)`` of a row costs a helper call per row and array, which made these kernels
    1.8x slower at 64 units (16 rows per step)."""
    rmask, has_rd, act, ract, exact, one = cfg
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
            _next_hm(b, u, h, hm, cfg)
        else:
            for j in range(u):
                hsr[j] = hr[j]


@njit(**JIT_OPTIONS)
def gru_bstep32(drec, dxp, dh, dhr, mask, cfg, dyt, seq, gates, hst, s):
    """``gru_bstep`` for float32, tanh and sigmoid; dr and dx are (B, 3u), g is (B, 4u)."""
    rmask, has_rd, act, ract, exact, one = cfg
    dr, dx, g = drec[s], dxp[s], gates[s]
    ms, dys, add_dy = _step_inputs(mask, dyt, seq, s)
    hps, has_prev = hst[max(s - 1, 0)], s > 0
    nb, u = dh.shape
    zero = _F32(0)
    one = _F32(1)
    hpf = one if has_prev else zero
    for b in range(nb):
        _take_dh(b, u, dh, dhr, cfg, dys, add_dy)
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


@njit(**JIT_OPTIONS)
def simple_step(z3, xs, h, hm, ms, cfg, hs):
    """One SimpleRNN step: h = act(x-projection + hm @ recurrent_kernel); z3 is (B, 1, u)."""
    rmask, has_rd, act, ract, exact, one = cfg
    nb, u = h.shape
    for b in range(nb):
        if ms[b]:
            for j in range(u):
                z3[b, 0, j] += xs[b, 0, j]
            _act3(z3, b, 0, 1, act, exact, one)
            for j in range(u):
                h[b, j] = z3[b, 0, j]
            _next_hm(b, u, h, hm, cfg)
        for j in range(u):
            hs[b, j] = h[b, j]


@njit(**JIT_OPTIONS)
def simple_bstep(dxp, dh, dhr, dd, mask, cfg, dyt, seq, hst, s):
    """One backward SimpleRNN step (hs3: this step's states viewed as (B, 1, u))."""
    rmask, has_rd, act, ract, exact, one = cfg
    nb, u = dh.shape
    dz3, hs3 = dxp[s].reshape(nb, 1, u), hst[s].reshape(nb, 1, u)
    ms, dys, add_dy = _step_inputs(mask, dyt, seq, s)
    zero = one - one
    for b in range(nb):
        m = ms[b]
        _take_dh(b, u, dh, dhr, cfg, dys, add_dy)
        if not m:
            for j in range(u):
                dz3[b, 0, j] = zero
            continue
        _dact3(hs3, b, 0, 1, dd, act, one)
        for j in range(u):
            dz3[b, 0, j] = dh[b, j] * dd[b, 0, j]
            dh[b, j] = zero
