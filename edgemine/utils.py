"""Small utilities: one-hot labels and the random generators.

Every random draw in edgemine (initialisers, shuffling, dropout) comes from edgemine's global
generator or from one made from it, so ``set_random_seed(s)`` makes a run repeatable. A model
trains with a generator of its own (``Sequential.rng``, made from the global one on its first
fit): a checkpoint carries its state, so a resumed run draws what the uninterrupted run would.
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .dataset_utils import (  # where Keras 3 puts them: keras.utils
    image_dataset_from_directory,
    text_dataset_from_directory,
    timeseries_dataset_from_array,
)
from .preprocessing.sequence import pad_sequences  # where Keras 3 puts it: keras.utils

__all__ = [
    "get_rng",
    "image_dataset_from_directory",
    "pad_sequences",
    "rng_from_state",
    "rng_state",
    "set_random_seed",
    "text_dataset_from_directory",
    "timeseries_dataset_from_array",
    "to_categorical",
    "using_rng",
]

_rng: np.random.Generator = np.random.default_rng()
# the generator of the model whose training step is running (see ``using_rng``)
_active: contextvars.ContextVar[np.random.Generator | None] = contextvars.ContextVar(
    "edgemine_active_rng", default=None
)


def set_random_seed(seed: int) -> None:
    """Seed edgemine's generator (and Python's and numpy's legacy ones, as Keras does).

    A model makes its own training generator (``model.rng``) from this one on its first
    ``fit``, so seed before that fit to repeat a run; a model loaded from a checkpoint goes on
    with the checkpoint's generator (set ``model.rng = None`` to make a new one from here).

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
    """The generator that edgemine draws from: inside ``using_rng(g)`` that is ``g``, else
    edgemine's global generator.

    >>> g = np.random.default_rng(0)
    >>> with using_rng(g):
    ...     get_rng() is g
    True
    >>> get_rng() is g
    False
    """
    active = _active.get()
    return _rng if active is None else active


@contextmanager
def using_rng(rng: np.random.Generator) -> Iterator[np.random.Generator]:
    """Make ``get_rng()`` return ``rng`` inside the block (a training step's dropout then draws
    from the model's own generator; see ``get_rng`` for an example)."""
    token = _active.set(rng)
    try:
        yield rng
    finally:
        _active.reset(token)


_UINT128 = 1 << 128


def rng_state(rng: np.random.Generator) -> dict:
    """The JSON-safe state of a PCG64 generator (what ``rng_from_state`` restores).

    >>> g = np.random.default_rng(5); state = rng_state(g); x = g.random()
    >>> rng_from_state(state).random() == x
    True
    """
    state = rng.bit_generator.state
    if state.get("bit_generator") != "PCG64":
        raise ValueError(
            f"only PCG64 generators (numpy's default_rng) can be saved, got "
            f"{state.get('bit_generator')!r}"
        )
    inner = state["state"]
    return {
        "bit_generator": "PCG64",
        "state": {"state": int(inner["state"]), "inc": int(inner["inc"])},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def _exact_int(value, lo: int, hi: int, what: str) -> int:
    if type(value) is not int or not lo <= value < hi:
        raise ValueError(f"{what} must be an int in [{lo}, {hi}), got {value!r}")
    return value


def rng_from_state(state) -> np.random.Generator:
    """A new generator in the state ``rng_state`` gave; draws nothing from edgemine's.
    Raises ValueError naming the field for a state that is not exactly such a dict."""
    if not isinstance(state, dict) or set(state) != {
        "bit_generator",
        "state",
        "has_uint32",
        "uinteger",
    }:
        raise ValueError("a generator state must have exactly the fields of rng_state()")
    if state["bit_generator"] != "PCG64":
        raise ValueError(f"bit_generator must be 'PCG64', got {state['bit_generator']!r}")
    inner = state["state"]
    if not isinstance(inner, dict) or set(inner) != {"state", "inc"}:
        raise ValueError("state must be an object with the fields 'state' and 'inc'")
    clean = {
        "bit_generator": "PCG64",
        "state": {
            "state": _exact_int(inner["state"], 0, _UINT128, "state.state"),
            "inc": _exact_int(inner["inc"], 0, _UINT128, "state.inc"),
        },
        "has_uint32": _exact_int(state["has_uint32"], 0, 2, "has_uint32"),
        "uinteger": _exact_int(state["uinteger"], 0, 1 << 32, "uinteger"),
    }
    bits = np.random.PCG64(0)  # a fixed seed: no entropy drawn, and the state replaces it
    bits.state = clean
    return np.random.Generator(bits)


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
