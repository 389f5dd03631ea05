"""Helpers that both backends use (shape rules, gradient destinations, id ranges).

This module is neutral ground: ``kernels/cpu`` and ``kernels/cuda`` import it, and neither imports
the other, so either backend can be replaced or removed alone.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def conv_output_size(size: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """Output length and leading pad along one axis, with TensorFlow's 'same'/'valid' rules.

    >>> conv_output_size(28, 3, 1, "valid"), conv_output_size(28, 3, 2, "same")
    ((26, 0), (14, 0))
    """
    if padding == "valid":
        return (size - k) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2


def gradient_into(out, i: int, value):
    """``value``, or, when ``out`` gives a destination for it (``out[i]``, the optimizer's flat
    gradient buffer: see ``Optimizer``), ``value`` copied there and that array returned."""
    if out is None or out[i] is None:
        return value
    np.copyto(out[i], value.reshape(out[i].shape))
    return out[i]


def gradient_out(out, i: int):
    """The destination ``out[i]`` of a weight gradient, or None to allocate one."""
    return None if out is None else out[i]


@njit(cache=True, nogil=True)
def _id_range(ids):
    lo = ids[0]
    hi = ids[0]
    for i in range(1, ids.size):
        v = ids[i]
        if v < lo:
            lo = v
        elif v > hi:
            hi = v
    return lo, hi


def host_id_range(ids: np.ndarray) -> tuple[int, int]:
    """(smallest, largest) id in a non-empty integer host array.

    >>> host_id_range(np.array([[3, 1], [7, 2]]))
    (1, 7)
    """
    lo, hi = _id_range(np.ascontiguousarray(ids).reshape(-1))
    return int(lo), int(hi)
