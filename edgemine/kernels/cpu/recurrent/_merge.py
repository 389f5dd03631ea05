"""Bidirectional's ops on the CPU: reversing a sequence in time, merging two directions."""

from __future__ import annotations

import numpy as np


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
