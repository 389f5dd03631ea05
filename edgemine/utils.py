"""Small utilities: one-hot labels and the global random seed.

Every random draw in edgemine (initialisers, shuffling, dropout) comes from one generator, so
``set_random_seed(s)`` makes a run repeatable.
"""

from __future__ import annotations

import random

import numpy as np

_rng: np.random.Generator = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Seed edgemine's generator (and Python's and numpy's legacy ones, as Keras does).

    >>> set_random_seed(7); a = get_rng().random()
    >>> set_random_seed(7); a == get_rng().random()
    True
    """
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _rng = np.random.default_rng(int(seed))
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)  # noqa: NPY002 (as Keras does, for user code)


def get_rng() -> np.random.Generator:
    """The generator that edgemine draws from."""
    return _rng


def to_categorical(y, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """One-hot encode integer class labels, like ``keras.utils.to_categorical``.

    >>> to_categorical([0, 2], 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    y = np.asarray(y)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating):
            raise TypeError(f"to_categorical needs integer labels, got dtype {y.dtype}")
        if not np.all(np.isfinite(y)):
            raise ValueError("to_categorical: labels contain NaN or infinity")
        if not np.all(y == np.round(y)):
            raise ValueError("to_categorical: labels must be whole numbers")
    y = y.astype(np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.size and y.min() < 0:
        raise ValueError(f"to_categorical: negative label {int(y.min())}")
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(
            f"to_categorical: label {int(y.max())} is out of range for num_classes={num_classes}"
        )
    out = np.zeros((*y.shape, num_classes), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out
