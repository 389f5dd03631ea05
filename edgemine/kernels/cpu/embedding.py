"""Embedding lookups on the CPU: a row gather forward and a row-sparse scatter-add backward.

The backward never allocates a dense (vocab, dim) gradient: it returns the unique rows that the
batch used and the summed gradient of each, which ``SparseGradient`` carries to the optimizer.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._shared import host_id_range

__all__ = ["embedding_backward", "embedding_forward", "embedding_id_range", "embedding_mask"]

_OPTS = {"cache": True, "nogil": True}


@njit(**_OPTS)
def _gather(table, ids, out):
    dim = table.shape[1]
    for i in range(ids.size):
        r = ids[i]
        for j in range(dim):
            out[i, j] = table[r, j]


@njit(**_OPTS)
def _scatter_add_dense_slots(ids, dy, vocab):
    # A row -> slot table over the vocabulary: one pass, rows in order of first appearance.
    slot = np.full(vocab, -1, np.int64)
    rows = np.empty(ids.size, np.int64)
    n = 0
    for i in range(ids.size):
        r = ids[i]
        if slot[r] < 0:
            slot[r] = n
            rows[n] = r
            n += 1
    dim = dy.shape[1]
    values = np.zeros((n, dim), dy.dtype)
    for i in range(ids.size):
        k = slot[ids[i]]
        for j in range(dim):
            values[k, j] += dy[i, j]
    return rows[:n].copy(), values


@njit(**_OPTS)
def _scatter_add_inverse(inverse, n, dy):
    dim = dy.shape[1]
    values = np.zeros((n, dim), dy.dtype)
    for i in range(inverse.size):
        k = inverse[i]
        for j in range(dim):
            values[k, j] += dy[i, j]
    return values


def embedding_id_range(ids) -> tuple[int, int]:
    """(smallest, largest) id in a non-empty integer array."""
    return host_id_range(ids)


def embedding_forward(table, ids):
    """table[ids]: shape ids.shape + (dim,). Ids must already be checked to lie in range."""
    flat = np.ascontiguousarray(ids).reshape(-1)
    out = np.empty((flat.size, table.shape[1]), table.dtype)
    _gather(table, flat, out)
    return out.reshape((*np.shape(ids), table.shape[1]))


def embedding_backward(ids, dy, input_dim: int):
    """Row-sparse gradient of ``table[ids]``: (unique rows (int64), summed values (n, dim)).

    Duplicated ids add up in a fixed order (their order in ``ids``), so training is repeatable.
    """
    flat = np.ascontiguousarray(ids).reshape(-1)
    dy2 = np.ascontiguousarray(dy).reshape(flat.size, -1)
    if input_dim <= 16 * flat.size:
        return _scatter_add_dense_slots(flat, dy2, input_dim)
    # a vocabulary much larger than the batch: sort instead of a vocab-sized slot table
    rows, inverse = np.unique(flat, return_inverse=True)
    values = _scatter_add_inverse(inverse.reshape(-1).astype(np.int64), rows.size, dy2)
    return rows.astype(np.int64), values


def embedding_mask(ids):
    """Keras's ``mask_zero``: True where the id is not the padding id 0."""
    return np.not_equal(ids, 0)
