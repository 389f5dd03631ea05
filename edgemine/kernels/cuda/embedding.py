"""Embedding lookups on device arrays: a row gather forward and a row-sparse backward.

The ids arrive from the host once per batch (``fit`` copies each batch once), and the layer asks
for their range (a range check) before the lookup. Both that check and the backward's grouping of
duplicate ids are integer bookkeeping on a few thousand ids, which the host does faster than a
sort on the device plus its launches: the ids are copied back once per batch (kept for the
backward) and grouped with numpy. The float work stays on the device: the gather, and the sum of
each unique row's gradients, which adds in the order the ids appear (as the CPU backend does),
without atomics, so training is repeatable.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32, njit

from .._shared import host_id_range
from ._device import DeviceArray, empty, flat, grid1d, part, upload, uploaded_host, view


def _host_ids(ids) -> np.ndarray:
    """The ids on the host: the batch's uploaded host array when there is one (no download)."""
    return uploaded_host(ids) if hasattr(ids, "copy_to_host") else np.asarray(ids)


@cuda.jit(cache=True)
def _gather(table, ids, out):
    dim = table.shape[1]
    for idx in range(cuda.grid(1), ids.size * dim, cuda.gridsize(1)):
        i = idx // dim
        j = idx - i * dim
        out[i, j] = table[ids[i], j]


@cuda.jit(cache=True)
def _segment_sums(dy, perm, starts, values):
    """values[k] = sum of dy[perm[p]] for p in starts[k]:starts[k+1], in that order."""
    n, dim = values.shape
    for idx in range(cuda.grid(1), n * dim, cuda.gridsize(1)):
        k = idx // dim
        j = idx - k * dim
        acc = float32(0.0)
        for p in range(starts[k], starts[k + 1]):
            acc += dy[perm[p], j]
        values[k, j] = acc


@cuda.jit(cache=True)
def _not_zero(ids, out):
    for i in range(cuda.grid(1), ids.size, cuda.gridsize(1)):
        out[i] = ids[i] != 0


def embedding_id_range(ids: DeviceArray) -> tuple[int, int]:
    """(smallest, largest) id in a non-empty integer array (checked on the host copy)."""
    return host_id_range(_host_ids(ids))


def embedding_forward(table: DeviceArray, ids: DeviceArray) -> DeviceArray:
    """table[ids]: shape ids.shape + (dim,). Ids must already be checked to lie in range."""
    dim = int(table.shape[1])
    out = empty((ids.size, dim), table.dtype)
    if out.size:
        _gather[grid1d(out.size)](table, flat(ids), out)
    return view(out, *ids.shape, dim)


@njit(cache=True, nogil=True)
def _segment_plan(ids, vocab):
    """On the host, in one pass: which positions of ``ids`` sum into which gradient row, as
    ONE int32 array of a fixed size (so that the batch arena reuses its upload):
    ``perm (cap) | starts (n + 1) | rows (n)``, padded to 3 * cap + 1 for cap = ids.size.
    Rows come in the CPU backend's order (first appearance, or sorted for a vocabulary much
    larger than the batch); each row's positions ascend (the CPU's summation order)."""
    cap = ids.size
    packed = np.zeros(3 * cap + 1, np.int32)
    rows = packed[2 * cap + 1 :]
    slot_of = np.empty(cap, np.int32)
    if vocab <= 16 * cap:
        slot = np.full(vocab, -1, np.int32)
        n = 0
        for i in range(cap):
            k = slot[ids[i]]
            if k < 0:
                k = slot[ids[i]] = n
                rows[n] = ids[i]
                n += 1
            slot_of[i] = k
    else:
        uniq = np.unique(ids)
        n = uniq.size
        rows[:n] = uniq
        slot_of[:] = np.searchsorted(uniq, ids)
    starts = packed[cap : cap + n + 1]
    for i in range(cap):
        starts[slot_of[i] + 1] += 1
    for k in range(n):
        starts[k + 1] += starts[k]
    nxt = starts[:n].copy()
    for i in range(cap):
        k = slot_of[i]
        packed[nxt[k]] = i
        nxt[k] += 1
    return packed, n


def embedding_backward(
    ids: DeviceArray, dy: DeviceArray, input_dim: int
) -> tuple[DeviceArray, DeviceArray]:
    """Row-sparse gradient of ``table[ids]``: (unique rows as int32 device array, summed values
    (n, dim) device array), rows in the same order as the CPU backend returns them."""
    host = np.ascontiguousarray(_host_ids(ids)).reshape(-1)
    cap = host.size
    packed, n = _segment_plan(host, int(input_dim))
    dev = upload(packed)
    dim = int(tuple(dy.shape)[-1])
    values = part(empty((cap, dim), dy.dtype), 0, n)
    if values.size:
        _segment_sums[grid1d(values.size)](
            view(dy, cap, dim), part(dev, 0, cap), part(dev, cap, cap + n + 1), values
        )
    return part(dev, 2 * cap + 1, 2 * cap + 1 + n), values


def embedding_mask(ids: DeviceArray) -> DeviceArray:
    """Keras's ``mask_zero``: True where the id is not the padding id 0 (a bool device array)."""
    out = empty(tuple(int(d) for d in ids.shape), np.bool_)
    if out.size:
        _not_zero[grid1d(out.size)](flat(ids), flat(out))
    return out
