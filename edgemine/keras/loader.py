"""``load_keras``: a Keras Sequential model file to an edgemine model, checked step by step:
config (every layer and option), shapes (before anything is allocated), weights (before they
are read), then the model is built and its weights set."""

from __future__ import annotations

import os
from typing import Any

from ..layers import Layer
from ..layers.base import _snake
from ..models import Sequential
from .config import INPUT_DTYPES, Where, check_dtype, class_name, make_layer
from .files import KerasSource, open_keras
from .weights import check_total, expected_shapes, layers_with_weights, read_layer_weights

MAX_LAYERS = 4096
MAX_DIM = 1 << 31
_MODEL_OPTIONS = {"name", "trainable", "dtype", "layers", "build_input_shape"}
_INPUT_OPTIONS = {"batch_shape", "batch_input_shape", "dtype", "name", "sparse", "ragged"}
_INPUT_FIXED = {"sparse": False, "ragged": False, "optional": False}


def _entries(config: dict, where: Where) -> tuple[str, list, dict]:
    """The model's name, its layer entries and its config, for a Sequential model only."""
    kind = class_name(config, where)
    if kind in ("Functional", "Model"):
        raise where.fail(
            "functional Keras models are not supported yet; edgemine converts Sequential models"
        )
    if kind != "Sequential":
        raise where.fail(f"the file holds a {kind}, not a Keras Sequential model")
    cfg = config.get("config")
    if isinstance(cfg, list):  # Keras 2.0-2.1: the layer list itself
        cfg = {"layers": cfg}
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        raise where.fail("the Sequential config has no layer list")
    unknown = sorted(set(cfg) - _MODEL_OPTIONS)
    if unknown:
        raise where.fail(f"Sequential option {unknown[0]!r} is not supported")
    check_dtype(cfg.get("dtype"), where)
    entries = cfg["layers"]
    if not entries or len(entries) > MAX_LAYERS:
        raise where.fail(f"the model has {len(entries)} layers (1 to {MAX_LAYERS} convert)")
    return str(cfg.get("name") or "sequential"), entries, cfg


def _shape(value: Any, where: Where, what: str) -> tuple | None:
    """A declared (batch, ...) shape without its batch axis; None if not declared."""
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) >= 2
    dims = value[1:] if ok else []
    ok = ok and all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 < d < MAX_DIM)
        for d in dims
    )
    if not ok:
        raise where.fail(f"{what} {str(value)[:80]} is not a (batch, ...) list of positive ints")
    return tuple(dims)


def _input_layer(entry: dict, where: Where) -> tuple | None:
    config = entry.get("config")
    if not isinstance(config, dict):
        raise where.fail("the InputLayer entry has no config object")
    at = where.layer(config.get("name", "?"), "InputLayer")
    for key, value in config.items():
        if key in _INPUT_FIXED and value != _INPUT_FIXED[key]:
            raise at.fail(f"option {key}={value!r} is not supported")
        if key not in _INPUT_OPTIONS | set(_INPUT_FIXED):
            raise at.fail(f"option {key!r} is not supported")
    check_dtype(config.get("dtype"), at, INPUT_DTYPES)
    return _shape(config.get("batch_shape", config.get("batch_input_shape")), at, "batch_shape")


def _input_shape(entries: list, cfg: dict, where: Where) -> tuple[tuple, list]:
    """The model's input shape (without the batch axis) and the entries after any InputLayer."""
    shape = None
    if class_name(entries[0], where) == "InputLayer":
        shape = _input_layer(entries[0], where)
        entries = entries[1:]
        if not entries:
            raise where.fail("the model has no layers after its InputLayer")
    first = entries[0] if isinstance(entries[0], dict) else {}
    first_cfg = first.get("config") if isinstance(first.get("config"), dict) else {}
    build = first.get("build_config") if isinstance(first.get("build_config"), dict) else {}
    for what, value in (
        ("batch_input_shape", first_cfg.get("batch_input_shape")),
        ("batch_shape", first_cfg.get("batch_shape")),
        ("build_input_shape", cfg.get("build_input_shape")),
        ("build_config.input_shape", build.get("input_shape")),
    ):
        if shape is None:
            shape = _shape(value, where, what)
    if shape is None:
        raise where.fail("the model declares no input shape (an unbuilt Keras model?)")
    return shape, entries


def _layers_from_config(src: KerasSource) -> tuple[str, tuple, list[Layer], list[list[tuple]]]:
    """Name, input shape, unbuilt layers and each layer's weight shapes."""
    where = Where(src.path.name)
    name, entries, cfg = _entries(src.config, where)
    input_shape, entries = _input_shape(entries, cfg, where)
    layers, shapes, shape = [], [], input_shape
    for entry in entries:
        layer = make_layer(entry, where, len(shape) + 1)
        at = where.layer(layer.name, type(layer).__name__)
        if "/" in layer.name or layer.name in {existing.name for existing in layers}:
            raise at.fail("layer names must be unique and free of '/'")
        try:
            shapes.append(expected_shapes(layer, shape))
            shape = tuple(layer.compute_output_shape(shape))
        except (TypeError, ValueError) as e:
            raise at.fail(f"input {shape}: {str(e).splitlines()[0]}") from None
        layers.append(layer)
    check_total(shapes, src)
    return name, input_shape, layers, shapes


def storage_keys(src: KerasSource, layers: list[Layer]) -> list[str]:
    """Where each layer's weights are in the file. Legacy HDF5 files name the groups after the
    layers; Keras 3 after the layer classes, numbered in order within the model (``dense``,
    ``dense_1``, ...), whatever the layers' own names."""
    if src.layout != "keras3":
        return [layer.name for layer in layers]
    counts: dict[str, int] = {}
    keys = []
    for layer in layers:
        base = _snake(type(layer).__name__)
        k = counts.get(base, 0)
        counts[base] = k + 1
        keys.append(base if k == 0 else f"{base}_{k}")
    return keys


def _read_weights(src: KerasSource, layers: list[Layer], shapes: list[list[tuple]]) -> list:
    keys = storage_keys(src, layers)
    extra = layers_with_weights(src) - {key for key, s in zip(keys, shapes) if s}
    if extra:
        raise src.fail(f"the file has weights for layers the model lacks: {sorted(extra)[:4]}")
    return [
        read_layer_weights(src, key, layer, s) if s else []
        for key, layer, s in zip(keys, layers, shapes)
    ]


def _set_weights(model: Sequential, weights: list, src: KerasSource) -> None:
    for layer, values in zip(model.layers, weights):
        built = [v.shape for v in layer.variables]
        if built != [v.shape for v in values]:  # expected_shapes and build disagree: a bug
            raise src.fail(f"layer {layer.name!r}: built weights {built} differ from the file's")
        layer.set_weights(values)


def load_keras(path: str | os.PathLike, model: Sequential | None = None) -> Sequential:
    """Read a Keras Sequential model (``.keras``, legacy ``.h5``) as an edgemine model, or the
    weights of a Keras 3 ``.weights.h5`` (or legacy weights ``.h5``) into ``model``, an
    edgemine model of the same architecture and layer names.

    No TensorFlow, Keras, PyTorch or JAX is imported; nothing in the file is run. Raises
    :class:`KerasFileError` (one line, naming the layer and option) for anything that does not
    convert exactly.

    Example (a legacy .h5 file written by hand, as Keras lays it out):
        >>> import json, h5py, numpy as np
        >>> layers = [{"class_name": "InputLayer", "config": {"batch_shape": [None, 3]}},
        ...           {"class_name": "Dense", "config": {"name": "dense", "units": 2}}]
        >>> with h5py.File("/tmp/doc_keras.h5", "w") as f:
        ...     f.attrs["model_config"] = json.dumps(
        ...         {"class_name": "Sequential", "config": {"layers": layers}})
        ...     f["model_weights/dense/dense/kernel"] = np.ones((3, 2), "float32")
        ...     f["model_weights/dense/dense/bias"] = np.zeros(2, "float32")
        ...     f["model_weights/dense"].attrs["weight_names"] = ["dense/kernel", "dense/bias"]
        >>> load_keras("/tmp/doc_keras.h5").predict(np.ones((1, 3), "float32"))
        array([[3., 3.]], dtype=float32)
    """
    with open_keras(path) as src:
        if model is not None:
            if not isinstance(model, Sequential) or not model.built:
                raise src.fail("model= must be a built edgemine Sequential model")
            shapes = [[v.shape for v in layer.variables] for layer in model.layers]
            weights = _read_weights(src, model.layers, shapes)
            _set_weights(model, weights, src)
            return model
        if src.config is None:
            raise src.fail(
                "the file holds weights only; give the edgemine model they belong to "
                "(load_keras(path, model=...), or edgemine convert --model)"
            )
        name, input_shape, layers, shapes = _layers_from_config(src)
        weights = _read_weights(src, layers, shapes)
    model = Sequential(layers, name=name)
    try:
        model.build((None, *input_shape))
    except (TypeError, ValueError) as e:
        raise src.fail(f"cannot build the model: {str(e).splitlines()[0]}") from None
    _set_weights(model, weights, src)
    model.preprocessing = _text_preprocessing(model)
    return model


def _text_preprocessing(model: Sequential) -> dict | None:
    """What a token-id model's file says about its tokenizer: ids below the Embedding's
    input_dim, sequences of the input's length. (Its word_index is not in a Keras file.)"""
    first = model.layers[0]
    if getattr(first, "input_dtype", "float") != "int" or len(model.input_shape) != 1:
        return None
    pre: dict = {"kind": "text", "num_words": int(first.input_dim)}
    if model.input_shape[0] is not None:
        pre["maxlen"] = int(model.input_shape[0])
    return pre
