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
import json
import os
from pathlib import Path

from .files import atomic_write_bytes

SUFFIX = ".weights.h5"
#: the root attribute holding the layer names, in the order save_weights numbered them
ORDER_ATTRIBUTE = "edgemine_layer_order"


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
        # the order the keys were numbered in: a functional model's may differ from Keras's
        f.attrs[ORDER_ATTRIBUTE] = json.dumps([la.name for la in layers if la.variables])
    atomic_write_bytes(path, buffer.getvalue())


def load_weights(model, filepath: str | os.PathLike) -> None:
    """Read weights saved by ``save_weights`` or by Keras (``.weights.h5``, ``.keras``, a
    legacy ``.h5``) into ``model``, an edgemine model of the same architecture. Every weight's
    shape is checked against the model before anything is set."""
    from ..keras.files import open_keras

    model._require_built()
    with open_keras(filepath) as src:
        read_weights_into(src, model)


def read_weights_into(src, model) -> None:
    """The weights of an open Keras file (``edgemine.keras.files.open_keras``) into ``model``,
    a built edgemine model: the one reader behind ``model.load_weights`` and
    ``load_keras(path, model=...)``."""
    from ..keras.loader import _read_weights, _set_weights

    layers = _weighted_layers(model)
    _check_numbering(src, model, layers)
    shapes = [[tuple(v.shape) for v in layer.variables] for layer in layers]
    _set_weights(layers, _read_weights(src, layers, shapes), src)


def _saved_order(src) -> list | None:
    """The layer names a file from ``save_weights`` was numbered by (None: another writer)."""
    root = getattr(src.weights, "file", None)
    value = None if root is None else root.attrs.get(ORDER_ATTRIBUTE)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or len(value) > 1 << 20:
        return None
    try:
        names = json.loads(value)
    except ValueError:
        return None
    return names if isinstance(names, list) else None


def _one_chain(model) -> bool:
    """Is the model one chain of layers (each reads one tensor that nothing else reads)? Then
    its layer order is the only one, Keras's too."""
    graph = getattr(model, "_graph", None)
    if graph is None or getattr(model, "is_chain", False):
        return True
    return all(len(node.inputs) <= 1 for node in graph.nodes) and all(
        len(readers) <= 1 for readers in graph.readers.values()
    )


def _check_numbering(src, model, layers: list) -> None:
    """Keras 3 keys a layer's weights by its class and its place among that class's layers in
    Keras's layer order. A Sequential's order is the chain; a functional model's may differ
    from the one Keras had, so with two layers of one class holding weights, only a file
    edgemine numbered for this very layer order is read (same-shaped weights would otherwise
    land in the wrong layer without a sound)."""
    if src.layout != "keras3" or _one_chain(model):
        return
    weighted = [layer for layer in layers if layer.variables]
    kinds = [type(layer).__name__ for layer in weighted]
    twice = sorted({k for k in kinds if kinds.count(k) > 1})
    if twice and _saved_order(src) != [layer.name for layer in weighted]:
        raise src.fail(
            f"a functional model with several {twice[0]} layers: this file numbers them in an "
            "order edgemine cannot check against this model (Keras's own layer order); "
            "load the .keras file with edgemine.load_keras instead"
        )


class _Keras3Layout:
    layout = "keras3"
