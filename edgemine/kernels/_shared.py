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


def conv_geometry(x_shape, kh: int, kw: int, strides, padding: str, corner=None) -> tuple:
    """(oh, ow, pt, pl, cropped) of a 2-D convolution of NHWC ``x_shape``: the output size to
    compute, the leading pads, and whether that is only a ``corner`` (rows, cols) of the full
    output (the part a 'valid' pooling reads: see ``Graph.corners``).

    >>> conv_geometry((8, 11, 11, 3), 3, 3, (1, 1), "valid", corner=(8, 8))
    (8, 8, 0, 0, True)
    """
    _, h, w, _ = x_shape
    oh, pt = conv_output_size(h, kh, strides[0], padding)
    ow, pl = conv_output_size(w, kw, strides[1], padding)
    if corner is None or tuple(corner) == (oh, ow):
        return oh, ow, pt, pl, False
    rows, cols = corner
    if not (0 < rows <= oh and 0 < cols <= ow):
        raise ValueError(f"conv2d corner {tuple(corner)} is outside the output ({oh}, {ow})")
    return rows, cols, pt, pl, True


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


def conv1d_geometry(length: int, k: int, stride: int, dilation: int, padding: str):
    """(output length, left pad, right pad) of a 1-D convolution or pooling window of ``k``
    taps ``dilation`` apart: TensorFlow's 'valid' / 'same' and Keras's 'causal' (all the padding
    on the left, so that output t sees inputs up to t only).

    >>> conv1d_geometry(10, 3, 1, 2, "causal"), conv1d_geometry(10, 3, 2, 1, "same")
    ((10, 4, 0), (5, 0, 1))
    """
    span = dilation * (k - 1) + 1
    if padding == "causal":
        return (length + span - 1 - span) // stride + 1, span - 1, 0
    out, left = conv_output_size(length, span, stride, padding)
    total = max((out - 1) * stride + span - length, 0) if padding == "same" else 0
    return out, left, total - left


def conv1d_transpose_geometry(length: int, k: int, stride: int, dilation: int, padding: str):
    """(output length, left pad) of Keras's Conv1DTranspose: the adjoint of a convolution from
    that output length back to ``length`` with that left pad.

    >>> conv1d_transpose_geometry(5, 3, 2, 1, "valid"), conv1d_transpose_geometry(5, 4, 2, 1, "same")
    ((11, 0), (10, 1))
    """
    span = dilation * (k - 1) + 1
    if padding == "valid":
        return length * stride + max(span - stride, 0), 0
    return length * stride, max(span - stride, 0) // 2
