"""Merging two tensors on the CPU: Bidirectional's directions and the merge layers (Add,
Concatenate, ...). Element-wise modes take equal shapes; ``concat`` joins the last axes, which
may differ in width."""

from __future__ import annotations

import numpy as np

MODES = ("concat", "sum", "ave", "mul", "sub", "max", "min")


def merge_forward(mode: str, a, b):
    """``mode`` of a and b over the last axis: concat, sum, ave, mul, sub, max or min."""
    if mode == "concat":
        return np.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "ave":
        return (a + b) * a.dtype.type(0.5)
    if mode == "mul":
        return a * b
    if mode == "sub":
        return a - b
    if mode == "max":
        return np.maximum(a, b)
    if mode == "min":
        return np.minimum(a, b)
    raise ValueError(f"unknown merge mode {mode!r}")


def merge_backward(mode: str, a, b, dy):
    """Gradients (da, db) of ``merge_forward(mode, a, b)`` for dL/dy (ties of max and min go
    to ``a``)."""
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
    if mode == "sub":
        return dy, -dy
    if mode in ("max", "min"):
        first = a >= b if mode == "max" else a <= b
        zero = dy.dtype.type(0)
        return np.where(first, dy, zero), np.where(first, zero, dy)
    raise ValueError(f"unknown merge mode {mode!r}")
