"""Recurrent layers (LSTM, GRU, SimpleRNN) on the CPU: forward and backpropagation through time.

This package's modules: ``_cells.py`` the per-step kernels, ``_sequences.py`` the
whole-sequence kernels, ``_chunks.py`` the drivers that run one chunk of rows through its
sequence, and this file the op functions that split the work over chunks.

Layout (Keras's): x is (batch, time, features); a cell's kernel is (in, G) and its recurrent
kernel (units, G) with G = 4u (LSTM gates i, f, c, o), 3u (GRU gates z, r, h) or u (SimpleRNN).

How the work is split (measured on the project's 2-core AVX-512 machine, which other jobs
share, so the numbers are medians of noisy runs):

* The input projection ``x @ kernel + bias`` is one BLAS product per chunk of rows (below) over
  all time steps, or, where the sequence kernels call sgemm themselves, one per block of steps
  inside the kernel (``PROJECTION_BLOCK_ROWS``: the block stays in cache until its steps read
  it; seed LSTM layer at batch 256 on a 2-core AMD EPYC: 26.9 -> 21.6 ms). In backward the
  kernel, recurrent-kernel and input gradients are one BLAS product each per chunk.
* Only the recurrence loops over time. Each step's gate math (activations, cell update, caches,
  masking) is one jitted step function (``<cell>_step`` / ``<cell>_bstep``, in ``_cells.py``).
* float32 LSTMs and GRUs with the default activations, where numpy's OpenBLAS is found
  (``USE_SGEMM``): the batch is split into one chunk of rows per thread (``MAX_THREADS``,
  default numba's thread count) and each thread runs its chunk's whole sequence in ONE jitted
  call (``lstm_seq32`` / ``lstm_bseq32``, ``gru_seq32`` / ``gru_bseq32``) that calls
  OpenBLAS's sgemm for ``h @ recurrent_kernel`` per step (``blas.py``: no Python runs per
  step; chunks under ``SGEMM_MIN_ROWS`` rows use the loop product below instead, which beats
  OpenBLAS's per-call cost there: 2.4x at batch 1). Each thread also does its chunk's input
  projection and its share of the weight and input gradients. OpenBLAS is single-threaded for the whole layer call: after any threaded
  product its worker busy-waits for over 100 ms and takes the second thread's core (measured:
  chunk threads 1.6x slower). Seed LSTM training step: 30-39 ms before, 21-23 ms with this.
  Embedding -> GRU(64, return_sequences) -> GRU(64) -> Dense -> Dense, 100 steps, batch 32:
  median 25 ms before, 16 ms with this and the GRU step kernels below.
* Other cells, activations and float64, from ``STEPWISE_MIN_BATCH`` rows on: ONE thread calls
  numpy's matmul per step from Python between step functions (splitting over two threads lost
  to the spinning worker, as above).
* Smaller batches of those are split into one chunk of rows per thread; each thread runs its
  chunk's whole sequence in ONE jitted call (``<cell>_seq``, in ``_sequences.py``) with a hand-vectorised product
  ``h @ recurrent_kernel`` (``mm_acc``, about 60 % of OpenBLAS's speed), so no Python runs per
  step: 2-3x faster at batch 1.
* float32 LSTMs and GRUs with tanh and sigmoid (the defaults) have their own step kernels
  (``lstm_step32`` / ``lstm_bstep32``, ``gru_step32`` / ``gru_bstep32``): each row's gate
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
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from ..._shared import gradient_into
from .. import blas
from ..blas import SGEMM
from ._cache import RNNCache
from ._chunks import backward_chunk, forward_chunk
from ._time import reverse_time

__all__ = [
    "RNN_ACTIVATIONS",
    "STEPWISE_MIN_BATCH",
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
#: chunks of fewer rows use the kernels' own loop product even so: OpenBLAS's per-call cost
#: dominates there (seed LSTM layer at batch 1 on a 2-core AMD EPYC: 0.53 ms with sgemm, 0.22
#: ms with the loop; equal at 4 rows)
SGEMM_MIN_ROWS = 4
#: where the sequence kernels call sgemm they also project the input, a block of steps at a time
#: (about this many rows of x per product): the block stays in cache from the product that
#: writes it to the steps that read it. One product over the whole sequence wrote 13 MB per
#: thread at batch 256 and ran at 49 GFLOP/s against 66 (seed LSTM, 2-core AMD EPYC)
PROJECTION_BLOCK_ROWS = 512
_GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


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


def _gemm(rows: int) -> int:
    """The sgemm address for the jitted kernels that run chunks of ``rows`` rows, or 0 for
    their loop product."""
    return SGEMM if USE_SGEMM and rows >= SGEMM_MIN_ROWS else 0


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


def _ring_steps(rows: int, steps: int) -> int:
    """Steps per block of the in-kernel input projection (``PROJECTION_BLOCK_ROWS``)."""
    return max(1, min(steps, PROJECTION_BLOCK_ROWS // rows))


def _dropout_masks(x, u: int, nch: int, dropout, recurrent_dropout, rng, train: bool):
    """(x with input dropout applied, its mask or None, the recurrent mask by chunk, whether
    there is one): one mask per sequence, input mask first."""
    nb, _, nin = x.shape
    dt = x.dtype
    dmask = None
    if train and dropout > 0.0:
        dmask = _dropout_mask((nb, 1, nin), dropout, rng, dt)
        x = x * dmask
    has_rd = bool(train and recurrent_dropout > 0.0)
    if has_rd:
        rmask = _dropout_mask((nb, u), recurrent_dropout, rng, dt).reshape(nch, nb // nch, u)
    else:
        rmask = np.ones((1, 1), dt)
    return x, dmask, rmask, has_rd


def _forward_state(r: RNNCache, mask, bias, dims: tuple, rev: bool, full: bool, seq: bool):
    """The mask, states, caches and GRU recurrent bias of ``rnn_forward``, set on ``r``.

    Whole-sequence caches (``full``) when training (hst also for a returned sequence); the
    general fused kernels always get them (their batches are small) so that they have one
    signature, while the fast ones reuse a one-step cache in inference (39 MB per layer at batch
    256)."""
    nch, steps, rows, u, g = dims
    cell, dt, rk = r.cell, r.kernel.dtype, r.rk
    if mask is None:
        m = np.ones((nch, steps, rows), np.uint8)
    else:
        m = _to_chunks(np.asarray(mask, dtype=np.bool_), nch, rev).view(np.uint8)
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
    r.mask, r.rb, r.full, r.store_h, r.h, r.c, r.hm = m, rb, full, store_h, h, c, hm
    r.hst, r.cst, r.gates = hst, cst, gates


def _projection_state(r: RNNCache, kernel, bias, dims: tuple, fast_fused: bool) -> None:
    """The input projection's kernel, bias, buffer and way, and the sequence kernels' sgemm
    (``r.gemm``), set on ``r``: the fused float32 kernels that call sgemm project blocks of
    ``r.ring`` steps themselves into a ring buffer; otherwise ``xp`` holds every step."""
    nch, steps, rows, g = dims
    dt = kernel.dtype
    r.gemm = _gemm(rows)
    r.ring = _ring_steps(rows, steps) if fast_fused and r.gemm else 0
    r.xp = np.empty((nch, r.ring or steps, rows, g), dt)
    r.kernel = np.ascontiguousarray(kernel) if r.ring else kernel
    xbias = None if bias is None else (bias[0] if r.cell == "gru" else bias)
    r.xbias = np.zeros(0, dt) if xbias is None else np.ascontiguousarray(xbias, dtype=dt)


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
    nb, steps = x.shape[:2]
    u = recurrent_kernel.shape[0]
    rk = np.ascontiguousarray(recurrent_kernel)
    # float32 LSTM / GRU with the default activations: the vectorised ``<cell>_step32`` kernels
    fast = cell in ("lstm", "gru") and not exact and act == 3 and ract == 2
    nch, fused = _plan(nb, fast)
    rows = nb // nch
    x, dmask, rmask, has_rd = _dropout_masks(x, u, nch, dropout, recurrent_dropout, rng, train)
    r = RNNCache()
    r.cell, r.xc, r.rk = cell, _to_chunks(x, nch, rev), rk
    _projection_state(r, kernel, bias, (nch, steps, rows, g), fast and fused)
    r.rmask, r.dmask, r.has_rd = rmask, dmask, has_rd
    r.act, r.ract, r.exact, r.one, r.fast, r.fused = act, ract, exact, one, fast, fused
    _forward_state(r, mask, bias, (nch, steps, rows, u, g), rev, train or (fused and not fast), seq)
    m, h, hst = r.mask, r.h, r.hst
    with _blas_for(nch):
        _run_chunks(functools.partial(forward_chunk, r), nch)
    zero_out = bool(zero_output_for_mask) and mask is not None
    if seq:
        y = _from_chunks(hst * m[..., None] if zero_out else hst, False)
    else:
        y = (h * m[:, -1, :, None] if zero_out else h).reshape(nb, u)
    if not train:
        return y, None
    r.xp = r.h = r.c = r.hm = r.xbias = None  # forward-only buffers: not kept until backward
    r.rev, r.seq, r.zero_out = rev, seq, zero_out
    return y, r


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
        backward_chunk(c, k, rkt, dyt, dxp, drec, exact, one)
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
