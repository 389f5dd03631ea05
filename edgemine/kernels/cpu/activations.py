"""Element-wise activations. Every backward is written in terms of the forward OUTPUT y,
so a layer needs to keep only its output for the backward pass."""

from __future__ import annotations

import numpy as np


def activation_forward(name: str, x: np.ndarray) -> np.ndarray:
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0, out=np.empty_like(x))
    if name == "sigmoid":
        # split by sign so that exp never overflows
        out = np.empty_like(x)
        pos = x >= 0
        out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
        e = np.exp(x[~pos])
        out[~pos] = e / (1.0 + e)
        return out
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
        return e
    raise ValueError(f"unknown activation {name!r}")


def activation_backward(name: str, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    if name == "linear":
        return dy
    if name == "relu":
        return np.where(y > 0, dy, 0).astype(dy.dtype, copy=False)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y * y)
    if name == "softmax":
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    raise ValueError(f"unknown activation {name!r}")
