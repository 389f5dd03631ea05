"""``load_keras``: a Keras model file (Sequential or functional) to an edgemine model, checked
step by step: config (every layer, option and call), shapes (before anything is allocated),
weights (before they are read), then the model is built and its weights set."""

from __future__ import annotations

import os

from ..layers import Embedding, Layer
from ..layers.base import BUILDING_PLACEHOLDERS, _snake
from ..models import Model, Sequential
from ..models.config import rebuild_graph
from .config import Where, check_dtype, class_name, declared_shape, make_layer, refuse_masked
from .files import KerasSource, open_keras
from .functional import FunctionalSpec, infer_shapes, input_layer, read_functional
from .weights import check_total, expected_shapes, layers_with_weights, read_layer_weights

MAX_LAYERS = 4096
_MODEL_OPTIONS = {"name", "trainable", "dtype", "layers", "build_input_shape"}
_FUNCTIONAL_OPTIONS = {"name", "trainable", "layers", "input_layers", "output_layers"}


def _entries(config: dict, where: Where) -> tuple[str, str, list, dict]:
    """The model's kind (Sequential or Functional), name, layer entries and config."""
    kind = class_name(config, where)
    if kind not in ("Sequential", "Functional", "Model"):
        raise where.fail(f"the file holds a {kind}, not a Keras Sequential or functional model")
    kind = "Sequential" if kind == "Sequential" else "Functional"
    cfg = config.get("config")
    if isinstance(cfg, list) and kind == "Sequential":  # Keras 2.0-2.1: the layer list itself
        cfg = {"layers": cfg}
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        raise where.fail(
            f"the {kind} config has no layer list (a subclassed Keras model holds Python code, "
            "which edgemine never runs)"
        )
    unknown = sorted(set(cfg) - (_MODEL_OPTIONS if kind == "Sequential" else _FUNCTIONAL_OPTIONS))
    if unknown:
        raise where.fail(f"{kind} option {unknown[0]!r} is not supported")
    check_dtype(cfg.get("dtype"), where)
    entries = cfg["layers"]
    if not entries or len(entries) > MAX_LAYERS:
        raise where.fail(f"the model has {len(entries)} layers (1 to {MAX_LAYERS} convert)")
    return kind, str(cfg.get("name") or kind.lower()), entries, cfg


def _input_shape(entries: list, cfg: dict, where: Where) -> tuple[tuple, list]:
    """The model's input shape (without the batch axis) and the entries after any InputLayer."""
    shape = None
    if class_name(entries[0], where) == "InputLayer":
        shape = tuple(input_layer(entries[0], where).input_spec_shape)
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
            shape = declared_shape(value, where, what)
    if shape is None:
        raise where.fail("the model declares no input shape (an unbuilt Keras model?)")
    return shape, entries


def _layers_from_config(src: KerasSource) -> tuple[str, tuple, list[Layer], list[list[tuple]]]:
    """Name, input shape, unbuilt layers and each layer's weight shapes."""
    where = Where(src.path.name)
    _, name, entries, cfg = _entries(src.config, where)
    input_shape, entries = _input_shape(entries, cfg, where)
    layers, shapes, shape = [], [], input_shape
    masked = False  # whether an Embedding(mask_zero=True) mask reaches the next layer
    for entry in entries:
        layer = make_layer(entry, where, len(shape) + 1)
        at = where.layer(layer.name, type(layer).__name__)
        if "/" in layer.name or layer.name in {existing.name for existing in layers}:
            raise at.fail("layer names must be unique and free of '/'")
        if masked:
            refuse_masked(layer, where)
        if isinstance(layer, Embedding):
            masked = layer.mask_zero
        else:
            masked = masked and layer.compute_mask(None, True) is not None
        try:
            shapes.append(expected_shapes(layer, shape))
            shape = tuple(layer.compute_output_shape(shape))
        except (TypeError, ValueError) as e:
            raise at.fail(f"input {shape}: {str(e).splitlines()[0]}") from None
        layers.append(layer)
    check_total(shapes, src)
    return name, input_shape, layers, shapes


def storage_keys(
    src: KerasSource, layers: list[Layer], kinds: list[str] | None = None
) -> list[str]:
    """Where each layer's weights are in the file. Legacy HDF5 files name the groups after the
    layers; Keras 3 after the layer classes (``kinds``: Keras's class names, by default the
    layers' own), numbered in order within the model (``dense``, ``dense_1``, ...), whatever
    the layers' own names."""
    if src.layout != "keras3":
        return [layer.name for layer in layers]
    counts: dict[str, int] = {}
    keys = []
    for kind in kinds or [type(layer).__name__ for layer in layers]:
        base = _snake(kind)
        k = counts.get(base, 0)
        counts[base] = k + 1
        keys.append(base if k == 0 else f"{base}_{k}")
    return keys


def _read_weights(
    src: KerasSource, layers: list[Layer], shapes: list[list[tuple]], keys: list[str] | None = None
) -> list:
    keys = keys or storage_keys(src, layers)
    extra = layers_with_weights(src) - {key for key, s in zip(keys, shapes) if s}
    if extra:
        raise src.fail(f"the file has weights for layers the model lacks: {sorted(extra)[:4]}")
    return [
        read_layer_weights(src, key, layer, s) if s else []
        for key, layer, s in zip(keys, layers, shapes)
    ]


def _set_weights(layers: list[Layer], weights: list, src: KerasSource) -> None:
    for layer, values in zip(layers, weights):
        built = [v.shape for v in layer.variables]
        if built != [v.shape for v in values]:  # expected_shapes and build disagree: a bug
            raise src.fail(f"layer {layer.name!r}: built weights {built} differ from the file's")
        layer.set_weights(values)


def load_keras(path: str | os.PathLike, model: Model | None = None) -> Model:
    """Read a Keras Sequential or functional model (``.keras``, legacy ``.h5``) as an edgemine
    model (a :class:`~edgemine.models.Sequential` or :class:`~edgemine.models.Model`), or the
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
            return _weights_into(src, model)
        if src.config is None:
            raise src.fail(
                "the file holds weights only; give the edgemine model they belong to "
                "(load_keras(path, model=...), or edgemine convert --model)"
            )
        if _entries(src.config, Where(src.path.name))[0] == "Functional":
            model = _load_functional(src)
        else:
            model = _load_sequential(src)
    model.preprocessing = _text_preprocessing(model)
    return model


def _weights_into(src: KerasSource, model: Model) -> Model:
    """A weights-only file's weights into ``model`` (``model.load_weights``'s reader)."""
    from ..saving.weights_h5 import read_weights_into

    if not isinstance(model, Model) or not model.built:
        raise src.fail("model= must be a built edgemine model")
    read_weights_into(src, model)
    return model


def _load_sequential(src: KerasSource) -> Sequential:
    name, input_shape, layers, shapes = _layers_from_config(src)
    weights = _read_weights(src, layers, shapes)
    model = Sequential(layers, name=name)
    try:
        model.build((None, *input_shape))
    except (TypeError, ValueError) as e:
        raise src.fail(f"cannot build the model: {str(e).splitlines()[0]}") from None
    _set_weights(model.layers, weights, src)
    return model


def _load_functional(src: KerasSource) -> Model:
    """A functional model: its calls and shapes checked, its weights read by layer name, the
    graph rebuilt (with placeholders for the weights, which the file's replace)."""
    where = Where(src.path.name)
    _, name, entries, cfg = _entries(src.config, where)
    spec = read_functional(cfg, name, entries, where)
    shapes = infer_shapes(spec, where)
    check_total(list(shapes.values()), src)
    # the config's order, which Keras 3 saves in (operations are not layers there)
    names = [n for n in spec.kinds if n in shapes and n not in spec.ops]
    layers = [spec.layers[n] for n in names]
    keys = storage_keys(src, layers, [spec.kinds[n] for n in names])
    weights = dict(zip(names, _read_weights(src, layers, [shapes[n] for n in names], keys)))
    model = _build_functional(spec, src)
    _set_weights(model.layers, [weights.get(layer.name, []) for layer in model.layers], src)
    return model


def _build_functional(spec: FunctionalSpec, src: KerasSource) -> Model:
    # the layers in the order of their first calls, which come in an order where each call
    # follows those it reads: rebuild_graph then makes nearly every call in its first pass
    inbound: dict[str, list] = {call.layer: [] for call in spec.calls}
    for call in sorted(spec.calls, key=lambda c: c.index):
        inbound[call.layer].append([r[:2] for r in call.refs])
    token = BUILDING_PLACEHOLDERS.set(True)
    try:
        refs = [[r[:2] for r in spec.inputs], [r[:2] for r in spec.outputs]]
        ins, outs = rebuild_graph(spec.layers, inbound, *refs)
        return Model(ins, outs[0] if len(outs) == 1 else outs, name=spec.name)
    except (TypeError, ValueError) as e:
        raise src.fail(f"cannot build the model: {str(e).splitlines()[0]}") from None
    finally:
        BUILDING_PLACEHOLDERS.reset(token)


def _text_preprocessing(model: Model) -> dict | None:
    """What a token-id model's file says about its tokenizer: ids below the Embedding's
    input_dim, sequences of the input's length. (Its word_index is not in a Keras file.)"""
    if len(model.inputs) != 1:
        return None
    first = model._consumer(model.inputs[0])
    if getattr(first, "input_dtype", "float") != "int" or len(model.input_shape) != 1:
        return None
    pre: dict = {"kind": "text", "num_words": int(first.input_dim)}
    if model.input_shape[0] is not None:
        pre["maxlen"] = int(model.input_shape[0])
    return pre
