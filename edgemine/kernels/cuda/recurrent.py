"""Recurrent layers (LSTM, GRU, SimpleRNN) on device arrays, with the CPU backend's semantics
(kernels/cpu/recurrent/: Keras layouts, masking, go_backwards, dropout masks, GRU reset_after).

The work is split as on the CPU: the input projection of all time steps is ONE GEMM (bias fused),
and in backward the kernel, recurrent-kernel and input gradients are one GEMM each. The recurrence
runs in ONE kernel launch per layer call, for all time steps: batch rows are independent, so each
block owns one row and walks the whole sequence, synchronising only its own threads (two
``syncthreads`` per step). Per step, the block's threads first compute one gate column each (the
recurrent product ``h @ recurrent_kernel`` fused with the gate activation, ``h`` staged in shared
memory), then one unit each (cell and hidden state). This avoids the launch per time step that
numba's ~launch overhead would make the bottleneck (100 steps x 2 layers x forward/backward).
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from .._shared import gradient_out
from ._device import (
    SIM,
    DeviceArray,
    act,
    dummy,
    empty,
    fill,
    grid1d,
    upload,
    view,
    workspace,
)
from .gemm import column_sums, gemm

RNN_ACTIVATIONS = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
_CELLS = {"lstm": (0, 4), "gru": (1, 3), "simple_rnn": (2, 1)}  # code, gates per unit
MAX_BLOCK = 8 if SIM else 1024


@cuda.jit(device=True)
def _dact(y, code):
    """d activation / d x from the activation's output y."""
    if code == 3:
        return float32(1.0) - y * y
    if code == 2:
        return y * (float32(1.0) - y)
    if code == 1:
        return float32(1.0) if y > float32(0.0) else float32(0.0)
    return float32(1.0)


@cuda.jit(cache=True)
def _rnn_fwd(
    cell,
    xp,
    rk,
    rbias,
    mask,
    has_mask,
    rmask,
    has_rd,
    rev,
    seq,
    zero_out,
    act_c,
    ract_c,
    train,
    out,
    hst,
    cst,
    gates,
    hp,
    h,
    c,
):
    """One block per batch row b; the whole sequence. h, c: (B, u) state scratch, zeroed here."""
    sh = cuda.shared.array(0, float32)
    b = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    bs = cuda.blockDim.x
    steps = xp.shape[1]
    u = rk.shape[0]
    ng = rk.shape[1]
    hm = sh[:u]
    gs = sh[u : 5 * u]
    for j in range(tid, u, bs):
        h[b, j] = float32(0.0)
        c[b, j] = float32(0.0)
    cuda.syncthreads()
    for s in range(steps):
        tt = steps - 1 - s if rev else s
        m = True
        if has_mask:
            m = mask[b, tt] != 0
        for j in range(tid, u, bs):
            v = h[b, j]
            if has_rd:
                v = v * rmask[b, j]
            hm[j] = v
            if train:
                hp[b, tt, j] = v if m else float32(0.0)
        cuda.syncthreads()
        if m:
            for col in range(tid, ng, bs):
                a = rbias[col] if cell == 1 else xp[b, tt, col]
                for k in range(u):
                    a += hm[k] * rk[k, col]
                if cell == 0:
                    gs[col] = act(a, act_c if (col >= 2 * u and col < 3 * u) else ract_c)
                elif cell == 1:
                    if col < 2 * u:
                        gs[col] = act(a + xp[b, tt, col], ract_c)
                    else:
                        gs[col + u] = a  # the recurrent h-part, kept for backward
                else:
                    gs[col] = act(a, act_c)
            cuda.syncthreads()
            for j in range(tid, u, bs):
                if cell == 0:
                    cj = gs[u + j] * c[b, j] + gs[j] * gs[2 * u + j]
                    c[b, j] = cj
                    hj = gs[3 * u + j] * act(cj, act_c)
                elif cell == 1:
                    z = gs[j]
                    hh = act(xp[b, tt, 2 * u + j] + gs[u + j] * gs[3 * u + j], act_c)
                    gs[2 * u + j] = hh
                    hj = z * h[b, j] + (float32(1.0) - z) * hh
                else:
                    hj = gs[j]
                h[b, j] = hj
                if train:
                    if cell == 0 or cell == 1:
                        for g in range(4):
                            gates[b, s, g * u + j] = gs[g * u + j]
                    else:
                        gates[b, s, j] = hj
        so = s if seq else 0
        for j in range(tid, u, bs):
            hj = h[b, j]
            out[b, so, j] = float32(0.0) if (zero_out and not m) else hj
            if train:
                hst[b, s, j] = hj
                if cell == 0:
                    cst[b, s, j] = c[b, j]


@cuda.jit(cache=True)
def _rnn_bwd(
    cell,
    rkt,
    mask,
    has_mask,
    rmask,
    has_rd,
    rev,
    seq,
    zero_out,
    act_c,
    ract_c,
    dy,
    hst,
    cst,
    gates,
    dxp,
    drec,
    dh,
    dc,
):
    """Backpropagation through time, one block per batch row. dh, dc: (B, u) scratch, zeroed
    here. Writes dxp (gradient of the input projection) and, for GRU, drec (of hm @ rk + rbias),
    in input time order."""
    dzs = cuda.shared.array(0, float32)
    b = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    bs = cuda.blockDim.x
    steps = hst.shape[1]
    u = hst.shape[2]
    ng = rkt.shape[0]
    for j in range(tid, u, bs):
        dh[b, j] = float32(0.0)
        dc[b, j] = float32(0.0)
    cuda.syncthreads()
    for s in range(steps - 1, -1, -1):
        tt = steps - 1 - s if rev else s
        m = True
        if has_mask:
            m = mask[b, tt] != 0
        for j in range(tid, u, bs):
            if m or not zero_out:
                if seq:
                    dh[b, j] += dy[b, s, j]
                elif s == steps - 1:
                    dh[b, j] += dy[b, 0, j]
        if not m:
            for col in range(tid, ng, bs):
                dxp[b, tt, col] = float32(0.0)
                if cell == 1:
                    drec[b, tt, col] = float32(0.0)
            continue  # uniform over the block: no thread reaches a syncthreads below
        for j in range(tid, u, bs):
            dhj = dh[b, j]
            if cell == 0:
                gi = gates[b, s, j]
                gf = gates[b, s, u + j]
                gg = gates[b, s, 2 * u + j]
                go = gates[b, s, 3 * u + j]
                tc = act(cst[b, s, j], act_c)
                cprev = cst[b, s - 1, j] if s > 0 else float32(0.0)
                dcj = dc[b, j] + dhj * go * _dact(tc, act_c)
                zi = dcj * gg * _dact(gi, ract_c)
                zf = dcj * cprev * _dact(gf, ract_c)
                zg = dcj * gi * _dact(gg, act_c)
                zo = dhj * tc * _dact(go, ract_c)
                dzs[j] = zi
                dzs[u + j] = zf
                dzs[2 * u + j] = zg
                dzs[3 * u + j] = zo
                dxp[b, tt, j] = zi
                dxp[b, tt, u + j] = zf
                dxp[b, tt, 2 * u + j] = zg
                dxp[b, tt, 3 * u + j] = zo
                dc[b, j] = dcj * gf
                dh[b, j] = float32(0.0)
            elif cell == 1:
                z = gates[b, s, j]
                r = gates[b, s, u + j]
                hh = gates[b, s, 2 * u + j]
                rh = gates[b, s, 3 * u + j]
                hprev = hst[b, s - 1, j] if s > 0 else float32(0.0)
                vz = dhj * (hprev - hh) * _dact(z, ract_c)
                vh = dhj * (float32(1.0) - z) * _dact(hh, act_c)
                vr = vh * rh * _dact(r, ract_c)
                dxp[b, tt, j] = vz
                dxp[b, tt, u + j] = vr
                dxp[b, tt, 2 * u + j] = vh
                dzs[j] = vz
                dzs[u + j] = vr
                dzs[2 * u + j] = vh * r
                drec[b, tt, j] = vz
                drec[b, tt, u + j] = vr
                drec[b, tt, 2 * u + j] = vh * r
                dh[b, j] = dhj * z
            else:
                dz = dhj * _dact(hst[b, s, j], act_c)
                dzs[j] = dz
                dxp[b, tt, j] = dz
                dh[b, j] = float32(0.0)
        cuda.syncthreads()
        for k in range(tid, u, bs):
            acc = float32(0.0)
            for col in range(ng):
                acc += dzs[col] * rkt[col, k]
            if has_rd:
                acc = acc * rmask[b, k]
            dh[b, k] += acc
        cuda.syncthreads()


@cuda.jit(cache=True)
def _transpose(a, out):
    rows, cols = a.shape
    for idx in range(cuda.grid(1), rows * cols, cuda.gridsize(1)):
        r = idx // cols
        out[idx - r * cols, r] = a[r, idx - r * cols]


@cuda.jit(cache=True)
def _mul_time_bcast(x, m, out):
    """out[b, t, i] = x[b, t, i] * m[b, 0, i]."""
    nb, steps, n = x.shape
    for idx in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        i = idx % n
        b = idx // (steps * n)
        t = (idx // n) % steps
        out[b, t, i] = x[b, t, i] * m[b, 0, i]


@cuda.jit(cache=True)
def _reverse_time(y, out):
    nb, steps, n = y.shape
    for idx in range(cuda.grid(1), y.size, cuda.gridsize(1)):
        i = idx % n
        b = idx // (steps * n)
        t = (idx // n) % steps
        out[b, steps - 1 - t, i] = y[b, t, i]


class RNNCache:
    """What ``rnn_backward`` needs from ``rnn_forward`` (opaque to layers)."""

    __slots__ = (
        "cell", "x", "kernel", "rk", "mask", "has_mask", "rmask", "dmask", "has_rd", "rev",
        "seq", "zero_out", "act", "ract", "hst", "cst", "gates", "hp",
    )  # fmt: skip


def _host_dropout_mask(shape, rate, rng):
    keep = rng.random(shape, dtype=np.float32) >= rate
    return upload(keep.astype(np.float32) * np.float32(1.0 / (1.0 - rate)))


def _block(ng: int) -> int:
    return min(MAX_BLOCK, max(1, ng)) if SIM else min(MAX_BLOCK, 32 * math.ceil(ng / 32))


def rnn_forward(
    cell: str,
    x: DeviceArray,
    kernel: DeviceArray,
    recurrent_kernel: DeviceArray,
    bias: DeviceArray | None,
    activation: str = "tanh",
    recurrent_activation: str = "sigmoid",
    mask: DeviceArray | None = None,
    go_backwards: bool = False,
    return_sequences: bool = False,
    zero_output_for_mask: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    rng: np.random.Generator | None = None,
    training: bool = False,
) -> tuple[DeviceArray, RNNCache | None]:
    """Run a recurrent layer over x (batch, time, features). Returns (y, cache); see the CPU
    backend's ``rnn_forward`` for every argument."""
    code, _ = _CELLS[cell]
    act_c = RNN_ACTIVATIONS[activation]
    ract_c = RNN_ACTIVATIONS[recurrent_activation]
    nb, steps, nin = (int(d) for d in x.shape)
    u, ng = (int(d) for d in recurrent_kernel.shape)
    dmask = None
    if training and dropout > 0.0:
        dmask = _host_dropout_mask((nb, 1, nin), dropout, rng)
        xd = empty(x.shape)
        _mul_time_bcast[grid1d(x.size)](x, dmask, xd)
        x = xd
    has_rd = bool(training and recurrent_dropout > 0.0)
    rmask = _host_dropout_mask((nb, u), recurrent_dropout, rng) if has_rd else view(dummy(), 1, 1)
    if bias is not None and code == 1:
        in_bias, rbias = bias[0], bias[1]
    else:
        in_bias, rbias = bias, None
    if code == 1 and rbias is None:
        rbias = empty((ng,))
        fill(rbias, 0.0)
    x2 = view(x, nb * steps, nin)
    xp = view(gemm(x2, kernel, bias=in_bias), nb, steps, ng)
    has_mask = mask is not None
    seq = bool(return_sequences)
    out = empty((nb, steps if seq else 1, u))
    if training:
        hst = empty((nb, steps, u))
        cst = empty((nb, steps, u)) if code == 0 else view(dummy(), 1, 1, 1)
        gates = empty((nb, steps, 4 * u if code == 1 else ng))
        hp = empty((nb, steps, u))
    else:
        hst = cst = gates = hp = view(dummy(), 1, 1, 1)
    h = workspace("rnn_h", (nb, u))
    c = workspace("rnn_c", (nb, u))
    if nb and steps:
        _rnn_fwd[nb, _block(ng), 0, 4 * 5 * u](
            code, xp, recurrent_kernel, rbias if rbias is not None else dummy(),
            mask if has_mask else view(dummy(np.bool_), 1, 1), has_mask, rmask, has_rd,
            bool(go_backwards), seq, bool(zero_output_for_mask), act_c, ract_c, bool(training),
            out, hst, cst, gates, hp, h, c,
        )  # fmt: skip
    y = out if seq else view(out, nb, u)
    if not training:
        return y, None
    cache = RNNCache()
    cache.cell, cache.x, cache.kernel, cache.rk = code, x, kernel, recurrent_kernel
    cache.mask, cache.has_mask = mask, has_mask
    cache.rmask, cache.dmask, cache.has_rd = rmask, dmask, has_rd
    cache.rev, cache.seq, cache.zero_out = bool(go_backwards), seq, bool(zero_output_for_mask)
    cache.act, cache.ract = act_c, ract_c
    cache.hst, cache.cst, cache.gates, cache.hp = hst, cst, gates, hp
    return y, cache


def rnn_backward(
    cache: RNNCache, dy: DeviceArray, need_dx: bool = True, out: tuple | None = None
) -> tuple[DeviceArray | None, DeviceArray, DeviceArray, DeviceArray]:
    """Gradients from ``rnn_forward``'s cache and dL/dy. Returns (dx or None, dkernel,
    drecurrent_kernel, dbias) with dbias shaped like the layer's bias ((2, 3u) for GRU).
    ``out``: None, or (dkernel, drecurrent_kernel, dbias) device arrays (any None) that the
    weight gradients are written into."""
    c = cache
    nb, steps, nin = (int(d) for d in c.x.shape)
    u, ng = (int(d) for d in c.rk.shape)
    dy3 = view(dy, nb, steps if c.seq else 1, u)
    dxp = empty((nb, steps, ng))
    drec = empty((nb, steps, ng)) if c.cell == 1 else dxp
    rkt = workspace("rnn_rkt", (ng, u))
    _transpose[grid1d(c.rk.size)](c.rk, rkt)
    dh = workspace("rnn_dh", (nb, u))
    dc = workspace("rnn_dc", (nb, u))
    if nb and steps:
        _rnn_bwd[nb, _block(ng), 0, 4 * ng](
            c.cell, rkt, c.mask if c.has_mask else view(dummy(np.bool_), 1, 1), c.has_mask,
            c.rmask, c.has_rd, c.rev, c.seq, c.zero_out, c.act, c.ract, dy3, c.hst, c.cst,
            c.gates, dxp, drec, dh, dc,
        )  # fmt: skip
    dxp2 = view(dxp, nb * steps, ng)
    drec2 = view(drec, nb * steps, ng)
    dkernel = gemm(view(c.x, nb * steps, nin), dxp2, gradient_out(out, 0), trans_a=True)
    drk = gemm(view(c.hp, nb * steps, u), drec2, gradient_out(out, 1), trans_a=True)
    dbias = gradient_out(out, 2)
    if c.cell == 1:
        if dbias is None:
            dbias = empty((2, ng))
        column_sums(dxp2, out=dbias[0])
        column_sums(drec2, out=dbias[1])
    else:
        dbias = column_sums(dxp2, out=dbias)
    dx = None
    if need_dx:
        dx = view(gemm(dxp2, c.kernel, trans_b=True), nb, steps, nin)
        if c.dmask is not None:
            _mul_time_bcast[grid1d(dx.size)](dx, c.dmask, dx)
    return dx, dkernel, drk, dbias


# ----- Bidirectional -----
def _as3d(y):
    shape = tuple(int(d) for d in y.shape)
    rest = y.size // (shape[0] * shape[1]) if shape[0] * shape[1] else 0
    return view(y, shape[0], shape[1], rest)


def reverse_time(y: DeviceArray) -> DeviceArray:
    """y[:, ::-1] as a new contiguous device array."""
    out = empty(y.shape, y.dtype)
    if y.size:
        _reverse_time[grid1d(y.size)](_as3d(y), _as3d(out))
    return out
