"""RepeatVector and SpatialDropout1D: copies and per-channel scaling, left to numpy (one pass
each, nothing for a loop kernel to fuse)."""

from __future__ import annotations

import numpy as np


def repeat_vector_forward(x, n: int):
    """(batch, features) -> (batch, n, features), each sample repeated n times."""
    return np.ascontiguousarray(np.broadcast_to(x[:, None, :], (x.shape[0], n, x.shape[1])))


def repeat_vector_backward(dy):
    """dL/dx of :func:`repeat_vector_forward`: the sum over the repeats."""
    return np.ascontiguousarray(dy.sum(axis=1))


def spatial_dropout_forward(x, rate: float, rng):
    """Dropout of whole channels of (batch, steps, channels) x, one draw per sample and
    channel. Returns (y, mask) with the (batch, channels) mask scaled by 1 / (1 - rate)."""
    keep = rng.random((x.shape[0], x.shape[-1]), dtype=np.float32) >= rate
    mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - rate))
    return x * mask[:, None, :], mask


def spatial_dropout_backward(dy, mask):
    """dL/dx of :func:`spatial_dropout_forward`: dy scaled by the same channel mask."""
    return dy * mask[:, None, :]
