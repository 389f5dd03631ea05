"""Finding, checking and reading each layer's weights in a Keras HDF5 file.

The shapes a layer needs are worked out from its config before any weight is allocated or
read; a dataset is read only once its declared shape and dtype match, and only if it is stored
in the file itself (no external links, external raw storage or virtual datasets, which could
make the reader open other files).
"""

from __future__ import annotations

import math

import numpy as np

from ..layers import (
    BatchNormalization,
    Bidirectional,
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Dense,
    Embedding,
    Layer,
    LayerNormalization,
    TimeDistributed,
)
from ..layers.recurrent import BaseRNN
from .files import MAX_WEIGHT_BYTES, KerasSource


def _known(dim, layer: Layer, what: str) -> int:
    if dim is None:
        raise ValueError(f"layer {layer.name!r}: its {what} must be known, got None")
    return int(dim)


def expected_shapes(layer: Layer, input_shape: tuple) -> list[tuple[int, ...]]:
    """The shapes of ``layer``'s weights (Keras order) for ``input_shape``, without building it.

    Example:
        >>> from edgemine.layers import Dense
        >>> expected_shapes(Dense(3), (5,))
        [(5, 3), (3,)]
    """
    last = input_shape[-1] if input_shape else None
    if isinstance(layer, Bidirectional):
        return [*expected_shapes(layer.forward_layer, input_shape)] + expected_shapes(
            layer.backward_layer, input_shape
        )
    if isinstance(layer, Dense):
        n = _known(last, layer, "last input axis")
        return [(n, layer.units)] + ([(layer.units,)] if layer.use_bias else [])
    if isinstance(layer, Conv2D):
        c = _known(last, layer, "channel axis")
        return [(*layer.kernel_size, c, layer.filters)] + (
            [(layer.filters,)] if layer.use_bias else []
        )
    if isinstance(layer, (Conv1D, Conv1DTranspose)):
        c = _known(last, layer, "channel axis")
        k, f = layer.kernel_size, layer.filters
        kernel = (k, c, f) if isinstance(layer, Conv1D) else (k, f, c)
        return [kernel] + ([(f,)] if layer.use_bias else [])
    if isinstance(layer, BatchNormalization):
        c = (_known(last, layer, "channel axis"),)
        return [c] * (int(layer.scale) + int(layer.center) + 2)
    if isinstance(layer, LayerNormalization):  # gamma, then beta
        return [layer._normalised_shape(tuple(input_shape))] * (
            int(layer.scale) + int(layer.center)
        )
    if isinstance(layer, TimeDistributed):  # the wrapped layer's, for one step
        return expected_shapes(layer.layer, layer._child_shape(tuple(input_shape)))
    if isinstance(layer, Embedding):
        return [(layer.input_dim, layer.output_dim)]
    if isinstance(layer, BaseRNN):
        g = layer.gates * layer.units
        features = _known(last, layer, "feature axis")
        bias = [tuple(layer._bias_shape())] if layer.use_bias else []
        return [(features, g), (layer.units, g), *bias]
    return []


def check_total(shapes: list[list[tuple[int, ...]]], src: KerasSource) -> None:
    """Refuse a model that declares more than MAX_WEIGHT_BYTES of float32 weights."""
    total = sum(math.prod(s) for layer in shapes for s in layer)
    if total * 4 > MAX_WEIGHT_BYTES:
        raise src.fail(
            f"the model declares {total:,} parameters ({total * 4 / 2**30:.1f} GiB), more than "
            f"the {MAX_WEIGHT_BYTES >> 30} GiB limit"
        )


def _child(group, key: str, src: KerasSource, what: str):
    """``group[key]`` if it is a hard link inside this file, else None."""
    import h5py

    if not isinstance(group, h5py.Group):
        return None
    link = group.get(key, getlink=True)
    if link is None:
        return None
    if not isinstance(link, h5py.HardLink):
        raise src.fail(f"{what} is a link to elsewhere; refusing to follow it")
    return group[key]


_KERAS3_PATHS = {
    Bidirectional: ("forward_layer/cell/vars", "backward_layer/cell/vars"),
    BaseRNN: ("cell/vars",),
}


def _keras3_paths(layer: Layer) -> tuple[str, ...]:
    """Where Keras 3 keeps a layer's weights below its group: ``vars``, a recurrent cell's
    ``cell/vars``, and below ``layer/`` the weights of the layer TimeDistributed wraps."""
    if isinstance(layer, TimeDistributed):
        return tuple(f"layer/{p}" for p in _keras3_paths(layer.layer))
    return next((p for cls, p in _KERAS3_PATHS.items() if isinstance(layer, cls)), ("vars",))


def _keras3_datasets(src: KerasSource, name: str, layer: Layer) -> list:
    layers = _child(src.weights, "layers", src, "layers/")
    group = _child(layers, name, src, f"layers/{name}")
    if group is None:
        return []
    paths = _keras3_paths(layer)
    out = []
    for sub in paths:
        vars_group = group
        for part in sub.split("/"):
            vars_group = _child(vars_group, part, src, f"layers/{name}/{sub}")
        keys = list(vars_group.keys()) if vars_group is not None else []
        if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(keys))]:
            raise src.fail(f"layers/{name}/{sub} holds {keys[:4]}, not weights 0..{len(keys) - 1}")
        out.extend(
            _child(vars_group, str(i), src, f"layers/{name}/{sub}/{i}") for i in range(len(keys))
        )
    return out


def _legacy_names(group) -> list[str]:
    names = group.attrs.get("weight_names", [])
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def _legacy_datasets(src: KerasSource, name: str) -> list:
    group = _child(src.weights, name, src, f"model_weights/{name}")
    if group is None:
        return []
    out = []
    for weight in _legacy_names(group):
        parts = weight.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise src.fail(f"layer {name!r}: weight name {weight[:80]!r} is not a plain path")
        ds = group
        for part in parts:
            ds = _child(ds, part, src, f"{name}/{weight}")
        if ds is None:
            raise src.fail(f"layer {name!r}: weight {weight!r} is listed but missing")
        out.append(ds)
    return out


def layers_with_weights(src: KerasSource) -> set[str]:
    """The names of the file's layers that hold at least one weight."""
    if src.layout == "keras3":
        layers = _child(src.weights, "layers", src, "layers/")
        if layers is None:
            return set()
        found = set()

        def visit(path: str, obj) -> None:
            import h5py

            if isinstance(obj, h5py.Dataset):
                found.add(path.split("/")[0])

        for key in layers:
            group = _child(layers, key, src, f"layers/{key}")
            if hasattr(group, "visititems"):
                group.visititems(lambda p, o, key=key: visit(f"{key}/{p}", o))
        return found
    names = src.weights.attrs.get("layer_names", list(src.weights.keys()))
    names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    return {
        n
        for n in names
        if (g := _child(src.weights, n, src, f"model_weights/{n}")) is not None and _legacy_names(g)
    }


def read_layer_weights(
    src: KerasSource, name: str, layer: Layer, shapes: list[tuple[int, ...]]
) -> list[np.ndarray]:
    """The float32 weights of layer ``name``, checked against ``shapes`` before reading."""
    if src.layout == "keras3":
        datasets = _keras3_datasets(src, name, layer)
    else:
        datasets = _legacy_datasets(src, name)
    if len(datasets) != len(shapes):
        where = "no weights" if not datasets else f"{len(datasets)} weights"
        raise src.fail(
            f"layer {layer.name!r} ({type(layer).__name__}): the file has {where}, the layer needs "
            f"{len(shapes)} {[tuple(s) for s in shapes]}"
        )
    out = []
    for i, (ds, shape) in enumerate(zip(datasets, shapes)):
        what = f"layer {layer.name!r} ({type(layer).__name__}), weight {i} ({ds.name})"
        if not hasattr(ds, "dtype") or not hasattr(ds, "shape"):
            raise src.fail(f"{what} is not an array")
        if tuple(ds.shape) != tuple(shape):
            raise src.fail(f"{what} has shape {tuple(ds.shape)}, expected {tuple(shape)}")
        if ds.dtype.kind != "f":
            raise src.fail(f"{what} has dtype {ds.dtype}, expected floats")
        if ds.external or ds.is_virtual:
            raise src.fail(f"{what} is stored outside the file; refusing to read it")
        value = np.asarray(ds[()], dtype=np.float32)
        if not np.isfinite(value).all():
            raise src.fail(f"{what} holds NaN or infinite values")
        out.append(value)
    return out


def write_layer_weights(layers_group, key: str, layer: Layer, values: list[np.ndarray]) -> None:
    """Write ``layer``'s weights ``values`` (Keras order) under ``layers_group[key]`` in Keras
    3's ``.weights.h5`` layout, the one ``_keras3_datasets`` reads: ``vars/0..n``, or
    ``cell/vars`` for a recurrent layer, ``forward_layer/cell/vars`` plus
    ``backward_layer/cell/vars`` for a Bidirectional one, ``layer/...`` for a TimeDistributed.

    Example:
        >>> import h5py
        >>> from edgemine.layers import Dense
        >>> with h5py.File("/tmp/doc_w.weights.h5", "w") as f:
        ...     write_layer_weights(f.create_group("layers"), "dense", Dense(2),
        ...                         [np.ones((3, 2), "float32"), np.zeros(2, "float32")])
        ...     sorted(f["layers/dense/vars"])
        ['0', '1']
    """
    group = layers_group.create_group(key)
    paths = _keras3_paths(layer)
    split = len(values) // len(paths)  # Bidirectional: the forward layer's, then the backward's
    for i, sub in enumerate(paths):
        vars_group = group.require_group(sub)
        vars_group.attrs["name"] = layer.name
        for j, value in enumerate(values[i * split : (i + 1) * split]):
            vars_group.create_dataset(str(j), data=np.asarray(value, dtype=np.float32))
