"""``model.save_weights`` / ``model.load_weights``: Keras 3's ``.weights.h5`` file.

The file holds each layer's weights under ``layers/<key>/vars/0..n``, the key being the layer's
class in snake case, numbered in model order (``dense``, ``dense_1``, ...), as Keras 3 keys
them: a file Keras saved for the same architecture loads, and Keras loads edgemine's. Loading
reuses the Keras file reader (:mod:`edgemine.keras`), which checks every shape before reading
and names the layer on a mismatch; writing goes to memory first and then atomically to disk.

>>> import numpy as np
>>> from edgemine.layers import Dense, Input
>>> from edgemine.models import Sequential
>>> model = Sequential([Input(shape=(3,)), Dense(2)])
>>> save_weights(model, "/tmp/doc_model.weights.h5")
>>> other = Sequential([Input(shape=(3,)), Dense(2)])
>>> load_weights(other, "/tmp/doc_model.weights.h5")
>>> all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))
True
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from .files import atomic_write_bytes

SUFFIX = ".weights.h5"


def _weighted_layers(model) -> list:
    from ..layers.core import InputLayer

    return [layer for layer in model.layers if not isinstance(layer, InputLayer)]


def save_weights(model, filepath: str | os.PathLike, overwrite: bool = True) -> None:
    """Write ``model``'s weights to ``filepath`` (which must end in ``.weights.h5``, as in
    Keras 3), atomically."""
    import h5py

    from ..keras.loader import storage_keys
    from ..keras.weights import write_layer_weights

    path = Path(filepath)
    if not path.name.endswith(SUFFIX):
        raise ValueError(f"save_weights: the filepath must end in {SUFFIX!r}, got {str(path)!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (overwrite=False)")
    model._require_built()
    layers = _weighted_layers(model)
    keys = storage_keys(_Keras3Layout(), layers)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        group = f.create_group("layers")
        for key, layer in zip(keys, layers):
            write_layer_weights(group, key, layer, layer.get_weights())
        f.create_group("vars").attrs["name"] = model.name
    atomic_write_bytes(path, buffer.getvalue())


def load_weights(model, filepath: str | os.PathLike) -> None:
    """Read weights saved by ``save_weights`` or by Keras (``.weights.h5``, ``.keras``, a
    legacy ``.h5``) into ``model``, an edgemine model of the same architecture. Every weight's
    shape is checked against the model before anything is set."""
    from ..keras.files import open_keras
    from ..keras.loader import _read_weights, _set_weights

    model._require_built()
    layers = _weighted_layers(model)
    with open_keras(filepath) as src:
        shapes = [[tuple(v.shape) for v in layer.variables] for layer in layers]
        weights = _read_weights(src, layers, shapes)
        _set_weights(layers, weights, src)


class _Keras3Layout:
    layout = "keras3"
