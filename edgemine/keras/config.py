"""Keras model configs (Keras 2 and Keras 3 spellings) to unbuilt edgemine layers.

Every option of every Keras layer that edgemine has is listed in ``SPECS``: passed on, checked
against the values edgemine computes the same way (anything else refused, naming the layer and
the option), or ignored because it does not change the math (``unroll``, ``implementation``).
An option not listed is refused too, so a newer Keras's option never goes unnoticed.
"""

from __future__ import annotations

from typing import Any

from .. import activations as activations_mod
from .. import initializers
from ..layers import (
    GRU,
    LSTM,
    Activation,
    Add,
    Average,
    AveragePooling1D,
    AveragePooling2D,
    BatchNormalization,
    Bidirectional,
    Concatenate,
    Conv1D,
    Conv1DTranspose,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    Layer,
    LayerNormalization,
    LeakyReLU,
    Maximum,
    MaxPooling1D,
    MaxPooling2D,
    Minimum,
    Multiply,
    ReLU,
    RepeatVector,
    Reshape,
    SimpleRNN,
    Softmax,
    SpatialDropout1D,
    Subtract,
    TimeDistributed,
    UpSampling1D,
)
from .files import KerasFileError

KEEP, ACT, INIT, IGNORE = "keep", "activation", "initializer", "ignore"
_NONE = (None,)


def _none(*keys: str) -> dict[str, tuple]:
    return {k: _NONE for k in keys}


_CHANNELS_LAST = {"data_format": ("channels_last", None)}
_INITS = ("kernel_initializer", "bias_initializer")
_RNN = {
    "units": KEEP,
    "activation": ACT,
    "use_bias": KEEP,
    **dict.fromkeys(("kernel_initializer", "recurrent_initializer", "bias_initializer"), INIT),
    **dict.fromkeys(
        ("dropout", "recurrent_dropout", "seed", "return_sequences", "go_backwards"), KEEP
    ),
    "zero_output_for_mask": KEEP,
    **_none(
        "kernel_regularizer",
        "recurrent_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "kernel_constraint",
        "recurrent_constraint",
        "bias_constraint",
    ),
    "return_state": (False,),
    "stateful": (False,),
    "time_major": (False,),
    "unroll": IGNORE,  # the same math unrolled or not
    "implementation": IGNORE,  # Keras 2's kernel choice: the same math
    "use_cudnn": IGNORE,  # Keras 3's kernel choice: the same math
}
_POOL = {"pool_size": KEEP, "strides": KEEP, "padding": KEEP, **_CHANNELS_LAST}
_CONV1D = {
    **dict.fromkeys(("filters", "kernel_size", "strides", "padding", "use_bias"), KEEP),
    "dilation_rate": KEEP,
    "activation": ACT,
    **dict.fromkeys(_INITS, INIT),
    **_CHANNELS_LAST,
    **_none("kernel_regularizer", "bias_regularizer", "activity_regularizer"),
    **_none("kernel_constraint", "bias_constraint", "lora_rank"),
    "lora_alpha": IGNORE,
}

#: Keras class name -> (edgemine class, {option: KEEP | ACT | INIT | IGNORE | allowed values})
SPECS: dict[str, tuple[type[Layer], dict[str, Any]]] = {
    "Dense": (
        Dense,
        {
            "units": KEEP,
            "activation": ACT,
            "use_bias": KEEP,
            **dict.fromkeys(_INITS, INIT),
            **_none("kernel_regularizer", "bias_regularizer", "activity_regularizer"),
            **_none("kernel_constraint", "bias_constraint", "quantization_config", "lora_rank"),
            "lora_alpha": IGNORE,
        },
    ),
    "Conv2D": (
        Conv2D,
        {
            **dict.fromkeys(("filters", "kernel_size", "strides", "padding", "use_bias"), KEEP),
            "activation": ACT,
            **dict.fromkeys(_INITS, INIT),
            **_CHANNELS_LAST,
            "dilation_rate": (1, (1, 1)),
            "groups": (1,),
            **_none("kernel_regularizer", "bias_regularizer", "activity_regularizer"),
            **_none("kernel_constraint", "bias_constraint", "lora_rank"),
            "lora_alpha": IGNORE,
        },
    ),
    "Conv1D": (Conv1D, {**_CONV1D, "groups": (1,)}),
    "Conv1DTranspose": (Conv1DTranspose, {**_CONV1D, "output_padding": _NONE}),
    "MaxPooling1D": (MaxPooling1D, _POOL),
    "AveragePooling1D": (AveragePooling1D, _POOL),
    "GlobalAveragePooling1D": (GlobalAveragePooling1D, {**_CHANNELS_LAST, "keepdims": KEEP}),
    "GlobalMaxPooling1D": (GlobalMaxPooling1D, {**_CHANNELS_LAST, "keepdims": KEEP}),
    "UpSampling1D": (UpSampling1D, {"size": KEEP}),
    "MaxPooling2D": (MaxPooling2D, _POOL),
    "AveragePooling2D": (AveragePooling2D, _POOL),
    "GlobalAveragePooling2D": (GlobalAveragePooling2D, {**_CHANNELS_LAST, "keepdims": (False,)}),
    "GlobalMaxPooling2D": (GlobalMaxPooling2D, {**_CHANNELS_LAST, "keepdims": (False,)}),
    "Flatten": (Flatten, dict(_CHANNELS_LAST)),
    "Reshape": (Reshape, {"target_shape": KEEP}),
    "Dropout": (Dropout, {"rate": KEEP, "seed": KEEP, "noise_shape": _NONE}),
    "Activation": (Activation, {"activation": ACT}),
    "BatchNormalization": (
        BatchNormalization,
        {
            **dict.fromkeys(("axis", "momentum", "epsilon", "center", "scale"), KEEP),
            **dict.fromkeys(
                (
                    "beta_initializer",
                    "gamma_initializer",
                    "moving_mean_initializer",
                    "moving_variance_initializer",
                ),
                INIT,
            ),
            **_none("beta_regularizer", "gamma_regularizer", "beta_constraint"),
            **_none("gamma_constraint", "renorm_clipping", "adjustment", "virtual_batch_size"),
            "synchronized": (False,),
            "renorm": (False,),
            "renorm_momentum": IGNORE,  # used only with renorm
            "fused": IGNORE,  # Keras 2's kernel choice: the same math
        },
    ),
    "Embedding": (
        Embedding,
        {
            "input_dim": KEEP,
            "output_dim": KEEP,
            "embeddings_initializer": INIT,
            "mask_zero": KEEP,
            "input_length": IGNORE,  # Keras 2; the model's input shape says it
            **_none("embeddings_regularizer", "activity_regularizer", "embeddings_constraint"),
            **_none("lora_rank", "quantization_config"),
            "lora_alpha": IGNORE,
            "sparse": (False,),
        },
    ),
    "LSTM": (LSTM, {**_RNN, "recurrent_activation": ACT, "unit_forget_bias": KEEP}),
    "GRU": (GRU, {**_RNN, "recurrent_activation": ACT, "reset_after": (True,)}),
    "SimpleRNN": (SimpleRNN, dict(_RNN)),
    "Bidirectional": (Bidirectional, {"layer": KEEP, "backward_layer": KEEP, "merge_mode": KEEP}),
    "TimeDistributed": (TimeDistributed, {"layer": KEEP}),
    "RepeatVector": (RepeatVector, {"n": KEEP}),
    "SpatialDropout1D": (SpatialDropout1D, {"rate": KEEP, "seed": KEEP, "noise_shape": _NONE}),
    "ReLU": (ReLU, dict.fromkeys(("max_value", "negative_slope", "threshold"), KEEP)),
    # Keras 2 wrote alpha, Keras 3 negative_slope (and reads alpha as it: see layer_kwargs)
    "LeakyReLU": (LeakyReLU, {"negative_slope": KEEP, "alpha": KEEP}),
    "Softmax": (Softmax, {"axis": KEEP}),
    "LayerNormalization": (
        LayerNormalization,
        {
            **dict.fromkeys(("axis", "epsilon", "center", "scale"), KEEP),
            **dict.fromkeys(("beta_initializer", "gamma_initializer"), INIT),
            **_none("beta_regularizer", "gamma_regularizer", "beta_constraint"),
            **_none("gamma_constraint"),
            "rms_scaling": (False,),
        },
    ),
    # merge layers of functional models
    **{cls.__name__: (cls, {}) for cls in (Add, Subtract, Multiply, Average, Maximum, Minimum)},
    "Concatenate": (Concatenate, {"axis": KEEP}),
}
#: options every layer has: handled by the reader itself
COMMON = {"name", "trainable", "dtype", "batch_input_shape", "batch_shape", "input_shape"}
_HINTS = {
    "reset_after": "edgemine's GRU is Keras's default reset_after=True form",
    "return_state": "edgemine's layers return one tensor",
    "stateful": "edgemine's recurrent layers start each batch from zeros",
    "groups": "grouped convolutions are not implemented",
    "dilation_rate": "dilated convolutions are not implemented",
    "rms_scaling": "Keras 3 deprecates it; edgemine normalises by the variance",
}
_INITIALIZERS = {  # Keras class -> (edgemine name, the arguments edgemine's version has)
    "Zeros": ("zeros", {}),
    "Ones": ("ones", {}),
    "GlorotUniform": ("glorot_uniform", {}),
    "GlorotNormal": ("glorot_normal", {}),
    "HeUniform": ("he_uniform", {}),
    "HeNormal": ("he_normal", {}),
    "LecunUniform": ("lecun_uniform", {}),
    "LecunNormal": ("lecun_normal", {}),
    "Orthogonal": ("orthogonal", {"gain": 1.0}),
    "RandomNormal": ("random_normal", {"mean": 0.0, "stddev": 0.05}),
    "RandomUniform": ("random_uniform", {"minval": -0.05, "maxval": 0.05}),
}
_FLOAT_DTYPES = {"float32", None}
INPUT_DTYPES = {"float32", "float64", "float16", "int32", "int64", "int8", "uint8", None}


class Where:
    """Names the file and layer in error messages: ``model.keras: layer 'lstm' (LSTM): ...``;
    a wrapped layer after its wrapper (``layer 'td' (TimeDistributed): layer 'd' (Dense): ``).
    """

    def __init__(self, file: str, name: str | None = None, kind: str | None = None, outer=""):
        self.file, self.name, self.kind, self.outer = file, name, kind, outer

    def _at(self) -> str:
        return self.outer + (
            f"layer {self.name!r} ({self.kind}): " if self.name is not None else ""
        )

    def layer(self, name: Any, kind: str) -> Where:
        return Where(self.file, str(name), kind, self._at())

    def fail(self, message: str) -> KerasFileError:
        return KerasFileError(f"{self.file}: {self._at()}{message}")


def class_name(entry: Any, where: Where) -> str:
    """The Keras class of a config entry; refuses custom (registered) objects.

    >>> class_name({"module": "keras.layers", "class_name": "Dense", "registered_name": None},
    ...            Where("m.keras"))
    'Dense'
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise where.fail("a layer entry must be an object with a class_name")
    name = entry["class_name"]
    module = entry.get("module")
    registered = entry.get("registered_name")
    custom = (
        ">" in name
        or (isinstance(module, str) and module.split(".")[0] != "keras")
        or (registered is not None and registered != name)
    )
    if custom:
        label = registered if isinstance(registered, str) else name
        raise where.fail(f"{label!r} is a custom object; only Keras's built-in layers convert")
    return name


def check_dtype(value: Any, where: Where, allowed: set = _FLOAT_DTYPES) -> str | None:
    """A dtype or dtype policy (Keras 3's DTypePolicy, Keras 2's Policy, or a plain name).

    >>> check_dtype({"class_name": "DTypePolicy", "config": {"name": "float32"}}, Where("m"))
    'float32'
    """
    if isinstance(value, dict):
        inner = value.get("config")
        value = inner.get("name") if isinstance(inner, dict) else None
        if value is None:
            raise where.fail("dtype policy without a name")
    if not isinstance(value, (str, type(None))) or value not in allowed:
        raise where.fail(f"dtype {value!r} is not supported (edgemine computes in float32)")
    return value


def activation(value: Any, option: str, where: Where) -> str:
    """edgemine's name for a Keras activation (None is linear); refuses the others.

    >>> activation("relu", "activation", Where("m.keras")), activation(None, "activation", Where("m.keras"))
    ('relu', 'linear')
    """
    if isinstance(
        value, dict
    ):  # some Keras 3 versions: {"class_name": "function", "config": "relu"}
        value = value.get("config") if isinstance(value.get("config"), str) else value
    if value is not None and (
        not isinstance(value, str) or value.lower() not in activations_mod.ACTIVATIONS
    ):
        raise where.fail(
            f"{option} {value!r} is not supported; edgemine has "
            f"{', '.join(activations_mod.ACTIVATIONS)}"
        )
    return activations_mod.get(value)


def initializer(value: Any, option: str, where: Where) -> str:
    """An edgemine initializer name for a Keras one with the same distribution.

    >>> initializer({"class_name": "GlorotUniform", "config": {"seed": 7}}, "kernel_initializer",
    ...             Where("m.keras"))
    'glorot_uniform'
    """
    if isinstance(value, str):
        key = {"uniform": "random_uniform", "normal": "random_normal"}.get(value, value)
        try:
            initializers.get(key)
        except ValueError:
            raise where.fail(f"{option} {value!r} is not supported") from None
        return key
    known = isinstance(value, dict) and isinstance(value.get("class_name"), str)
    if not known or value["class_name"] not in _INITIALIZERS:
        label = value.get("class_name") if isinstance(value, dict) else value
        raise where.fail(
            f"{option} {label!r} is not supported; edgemine has {', '.join(_INITIALIZERS)}"
        )
    name, defaults = _INITIALIZERS[value["class_name"]]
    args = value.get("config") or {}
    if not isinstance(args, dict):
        raise where.fail(f"{option}: config must be an object")
    for key, got in args.items():
        if key in ("seed", "input_axes", "output_axes"):
            continue  # a seed only picks the starting weights, which the file replaces
        if key not in defaults or got != defaults[key]:
            raise where.fail(f"{option} {value['class_name']}({key}={got!r}) is not supported")
    return name


MAX_DIM = 1 << 31


def declared_shape(value: Any, where: Where, what: str) -> tuple | None:
    """A declared (batch, ...) shape without its batch axis; None if not declared.

    >>> declared_shape([None, 28, 28, 1], Where("m.keras"), "batch_shape")
    (28, 28, 1)
    """
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


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def layer_kwargs(kind: str, config: dict, where: Where, input_rank: int) -> dict:
    """The edgemine constructor arguments for one Keras layer's config.

    >>> layer_kwargs("Dense", {"name": "d", "units": 2, "kernel_constraint": None}, Where("m"), 2)
    {'units': 2}
    """
    _, spec = SPECS[kind]
    kwargs: dict[str, Any] = {}
    for key, value in config.items():
        if key in COMMON:
            continue
        rule = spec.get(key)
        if rule is None:
            raise where.fail(f"option {key!r} is not supported")
        if rule == KEEP:
            kwargs[key] = value
        elif rule == ACT:
            kwargs[key] = activation(value, key, where)
        elif rule == INIT:
            kwargs[key] = initializer(value, key, where)
        elif rule != IGNORE and _as_tuple(value) not in rule:
            hint = _HINTS.get(key)
            raise where.fail(
                f"option {key}={value!r} is not supported" + (f" ({hint})" if hint else "")
            )
    if kind == "BatchNormalization":
        kwargs["axis"] = _bn_axis(kwargs.get("axis", -1), input_rank, where)
    if kind == "LeakyReLU" and "alpha" in kwargs:  # Keras 3 reads Keras 2's alpha, which wins
        kwargs["negative_slope"] = kwargs.pop("alpha")
    return kwargs


def _bn_axis(axis: Any, input_rank: int, where: Where) -> int:
    """Keras 2 stores the resolved axis as a list ([3] for images): edgemine's -1 is the last.
    ``input_rank`` counts the batch axis."""
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    if axis == -1 or axis == input_rank - 1:
        return -1
    raise where.fail(f"option axis={axis!r} is not supported (only the last, channels axis)")


def refuse_masked(layer: Layer, where: Where) -> None:
    """Refuse a layer that a Keras mask reaches where Keras uses the mask and edgemine does not:
    Keras's Softmax zeroes the masked positions, Keras's TimeDistributed hands each step's mask
    to a wrapped layer that takes one.

    >>> refuse_masked(Softmax(name="s"), Where("m.keras"))
    Traceback (most recent call last):
    ...
    edgemine.keras.files.KerasFileError: m.keras: layer 's' (Softmax): an Embedding mask reaches it, which Keras's Softmax applies and edgemine's does not
    """
    inner = layer.layer if isinstance(layer, TimeDistributed) else layer
    if isinstance(inner, Softmax) or (inner is not layer and inner.supports_masking):
        raise where.layer(layer.name, type(layer).__name__).fail(
            f"an Embedding mask reaches it, which Keras's {type(layer).__name__} applies and "
            "edgemine's does not"
        )


def make_layer(entry: dict, where: Where, input_rank: int) -> Layer:
    """An unbuilt edgemine layer (input shape not set: building waits for the weight checks).

    Example:
        >>> entry = {"class_name": "LSTM", "config": {"name": "lstm", "units": 4, "stateful": False}}
        >>> make_layer(entry, Where("m.keras"), 3)
        <LSTM name='lstm'>
        >>> entry["config"]["stateful"] = True
        >>> make_layer(entry, Where("m.keras"), 3)
        Traceback (most recent call last):
        ...
        edgemine.keras.files.KerasFileError: m.keras: layer 'lstm' (LSTM): option stateful=True is not supported (edgemine's recurrent layers start each batch from zeros)
    """
    kind = class_name(entry, where)
    config = entry.get("config")
    if not isinstance(config, dict):
        raise where.fail(f"the {kind} entry has no config object")
    at = where.layer(config.get("name", "?"), kind)
    if kind in ("Sequential", "Functional", "Model"):
        raise at.fail("nested models are not supported")
    if kind == "Lambda":
        raise at.fail("Lambda layers hold Python code, which edgemine never runs")
    if kind not in SPECS:
        raise at.fail(f"Keras layer {kind} is not supported; edgemine converts {', '.join(SPECS)}")
    check_dtype(config.get("dtype"), at)
    cls, _ = SPECS[kind]
    kwargs = layer_kwargs(kind, config, at, input_rank)
    if kind == "Bidirectional":
        for key in ("layer", "backward_layer"):
            if kwargs.get(key) is not None:
                kwargs[key] = make_layer(kwargs[key], at, input_rank)
    if kind == "TimeDistributed":  # the wrapped layer sees each step: one axis fewer
        kwargs["layer"] = make_layer(kwargs.get("layer"), at, input_rank - 1)
        if kwargs["layer"].multi_input:
            raise at.fail(f"it wraps {type(kwargs['layer']).__name__}, which takes several inputs")
    if "name" in config:
        kwargs["name"] = str(config["name"])
    if "trainable" in config:
        kwargs["trainable"] = bool(config["trainable"])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise at.fail(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
