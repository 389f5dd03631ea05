"""Models: ``Sequential``, the functional ``Model``, and ``load_model``.

>>> from edgemine.layers import Dense, Input
>>> x = Input(shape=(3,))
>>> Model(x, Dense(2)(x)).output_shape
(2,)
"""

from __future__ import annotations

import os

from .graph import KerasTensor
from .model import Model
from .sequential import Sequential


def load_model(filepath: str | os.PathLike, compile: bool = True) -> Model:  # noqa: A002
    """Load a ``.edgemine`` file written by ``model.save``."""
    from ..saving import load_model as _load

    return _load(filepath, compile=compile)


__all__ = ["KerasTensor", "Model", "Sequential", "load_model"]
