"""What fit / evaluate / predict are given, checked and converted (a clear error per problem).

>>> positive_int(3, "epochs")
3
"""

from __future__ import annotations

import numpy as np

from .layers.embedding import check_token_ids


def positive_int(value, what: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a ValueError naming ``what``."""
    # no int(value): fit(epochs=2.7) must not run 2 epochs, nor epochs='3' run 3
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{what} must be {kind}, got {value!r}")
    return int(value)


def numeric_array(x, what: str) -> np.ndarray:
    """``x`` (an array, or a list holding one array) as a numeric numpy array."""
    if x is None:
        raise ValueError(f"{what} is None")
    if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
        x = x[0]
    return _numeric(x, what)


def _numeric(value, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as e:
        raise TypeError(f"{what} could not be turned into an array: {e}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
    return arr


def model_inputs(arr: np.ndarray, expected: tuple, first, what: str) -> np.ndarray:
    """``arr`` checked against the model's per-sample input shape ``expected`` and converted for
    its first layer ``first``: int32 token ids for an Embedding, contiguous finite float32
    otherwise."""
    if arr.ndim != len(expected) + 1 or any(
        e is not None and e != a for e, a in zip(expected, arr.shape[1:])
    ):
        raise ValueError(
            f"{what} has shape {arr.shape}, but the model expects (batch, "
            f"{', '.join('None' if e is None else str(e) for e in expected)})"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{what} is empty")
    if first.input_dtype == "int":
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise TypeError(
                    f"{what} must hold integer token ids for layer {first.name!r}; "
                    "got non-integer floats"
                )
        check_token_ids(arr, what, first.input_dim, first.name)  # before the int32 cast
        return np.ascontiguousarray(arr, dtype=np.int32)
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


def model_targets(y, n: int, out: tuple, name: str, what: str) -> np.ndarray:
    """Targets ``y`` for ``n`` samples checked against the model's output shape ``out`` and loss
    ``name``: int32 labels for sparse_categorical_crossentropy, float32 otherwise."""
    if y is None:
        raise ValueError(f"{what} is None: fit/evaluate need targets")
    arr = _numeric(y, what)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise ValueError(f"{what} has {arr.shape[0] if arr.ndim else 0} samples but x has {n}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinite labels")
    if name == "sparse_categorical_crossentropy":
        flat = arr.reshape(n, -1)
        if flat.shape[1] != 1 or len(out) != 1:
            raise ValueError(
                f"{what} for sparse_categorical_crossentropy must be one integer label per "
                f"sample, got shape {arr.shape}"
            )
        if not np.all(flat == np.round(flat)):
            raise ValueError(f"{what} labels must be whole numbers")
        lo, hi = flat.min(), flat.max()
        if lo < 0 or hi >= out[-1]:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{what} holds label {int(bad)}, out of range for {out[-1]} classes")
        return flat.astype(np.int32)
    if arr.ndim == 1 and tuple(out) == (1,):  # Keras takes labels (n,) for an output (n, 1)
        arr = arr[:, None]
    if tuple(arr.shape[1:]) != tuple(out):
        hint = ""
        if name == "categorical_crossentropy" and arr.ndim == 1:
            hint = " (one-hot encode it with edgemine.utils.to_categorical)"
        raise ValueError(
            f"{what} has shape {arr.shape}, but the model outputs (batch, "
            f"{', '.join(map(str, out))}) for loss {name!r}{hint}"
        )
    if name in ("categorical_crossentropy", "binary_crossentropy") and (
        arr.min() < 0 or arr.max() > 1
    ):
        raise ValueError(f"{what} for {name} must lie in [0, 1]")
    return arr


class Inputs:
    """The arrays of a model with several inputs, sliced together along the batch axis.

    >>> both = Inputs([np.zeros((4, 2)), np.ones((4, 3))])
    >>> len(both), [a.shape for a in both[1:3].arrays]
    (4, [(2, 2), (2, 3)])
    """

    __slots__ = ("arrays",)

    def __init__(self, arrays: list):
        self.arrays = list(arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index) -> Inputs:
        return Inputs([a[index] for a in self.arrays])
