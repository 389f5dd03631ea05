"""Losses with Keras's names and reductions (mean over the batch).

>>> import numpy as np
>>> loss = get("categorical_crossentropy")
>>> round(float(loss(np.array([[0., 1.]]), np.array([[0.5, 0.5]]))), 4)
0.6931
"""

from __future__ import annotations

import numpy as np

ALIASES = {
    "categorical_crossentropy": "categorical_crossentropy",
    "categoricalcrossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
    "binary_crossentropy": "binary_crossentropy",
    "binarycrossentropy": "binary_crossentropy",
    "mean_squared_error": "mean_squared_error",
    "meansquarederror": "mean_squared_error",
    "mse": "mean_squared_error",
}


class Loss:
    """A named loss; ``from_logits`` means y_pred holds pre-activation scores."""

    def __init__(self, name: str, from_logits: bool = False):
        self.name = name
        self.from_logits = bool(from_logits)

    def __call__(self, y_true, y_pred) -> float:
        from .kernels import cpu

        y_pred = np.asarray(y_pred, dtype=np.float64)
        y_true = np.asarray(y_true, dtype=np.float64)
        return float(cpu.loss_forward(self.name, y_pred, y_true, self.from_logits).mean())

    def get_config(self) -> dict:
        return {"name": self.name, "from_logits": self.from_logits}

    def __repr__(self) -> str:
        return f"Loss({self.name!r}, from_logits={self.from_logits})"


def _factory(name):
    def make(from_logits: bool = False) -> Loss:
        return Loss(name, from_logits)

    make.__name__ = name
    make.__doc__ = f"The {name} loss (``from_logits`` for raw scores)."
    return make


CategoricalCrossentropy = _factory("categorical_crossentropy")
SparseCategoricalCrossentropy = _factory("sparse_categorical_crossentropy")
BinaryCrossentropy = _factory("binary_crossentropy")
MeanSquaredError = _factory("mean_squared_error")
categorical_crossentropy = Loss("categorical_crossentropy")
sparse_categorical_crossentropy = Loss("sparse_categorical_crossentropy")
binary_crossentropy = Loss("binary_crossentropy")
mean_squared_error = Loss("mean_squared_error")


def get(identifier) -> Loss:
    """A Loss from a name ('mse', 'categorical_crossentropy', ...), a config dict or a Loss."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, dict):
        return Loss(get(identifier.get("name")).name, identifier.get("from_logits", False))
    if isinstance(identifier, str):
        key = identifier.lower().replace(" ", "")
        if key in ALIASES:
            return Loss(ALIASES[key])
        raise ValueError(
            f"unknown loss {identifier!r}; known: {', '.join(sorted(set(ALIASES.values())))}"
        )
    raise TypeError(f"loss must be a name or an edgemine Loss, got {identifier!r}")
