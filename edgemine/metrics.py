"""Metrics, accumulated over an epoch. 'accuracy' is resolved from the loss, as Keras does."""

from __future__ import annotations

import numpy as np

KNOWN = (
    "accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "binary_accuracy",
    "mse",
    "mae",
)


def resolve(name: str, loss_name: str, output_dim: int) -> str:
    """Map 'accuracy'/'acc' to the concrete accuracy for this loss and output width.

    >>> resolve("accuracy", "sparse_categorical_crossentropy", 10)
    'sparse_categorical_accuracy'
    """
    if not isinstance(name, str):
        raise TypeError(f"metrics must be names, got {name!r}")
    key = name.lower()
    if key in ("accuracy", "acc"):
        if loss_name == "binary_crossentropy" or output_dim == 1:
            return "binary_accuracy"
        if loss_name == "sparse_categorical_crossentropy":
            return "sparse_categorical_accuracy"
        return "categorical_accuracy"
    key = {"mean_squared_error": "mse", "mean_absolute_error": "mae"}.get(key, key)
    if key not in KNOWN:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(KNOWN)}")
    return key


def batch_values(metric: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-sample metric values (averaged by the caller, weighted by sample count)."""
    if metric == "categorical_accuracy":
        return (
            (y_true.argmax(-1) == y_pred.argmax(-1))
            .astype(np.float64)
            .reshape(len(y_pred), -1)
            .mean(-1)
        )
    if metric == "sparse_categorical_accuracy":
        return (
            y_true.reshape(len(y_pred), -1)[:, 0]
            == y_pred.argmax(-1).reshape(len(y_pred), -1)[:, 0]
        ).astype(np.float64)
    if metric == "binary_accuracy":
        return (
            ((y_pred > 0.5) == (y_true > 0.5)).astype(np.float64).reshape(len(y_pred), -1).mean(-1)
        )
    d = (y_pred - y_true).reshape(len(y_pred), -1)
    if metric == "mse":
        return (d * d).mean(-1)
    return np.abs(d).mean(-1)


def display_name(requested: str) -> str:
    """The key that History and logs use: the name the user asked for ('accuracy')."""
    return {"acc": "accuracy", "mean_squared_error": "mse", "mean_absolute_error": "mae"}.get(
        requested.lower(), requested.lower()
    )
