"""Type and range checks of every field of config.json, each failure naming its field.

The layers' and optimizers' constructors check what a program passes them; a file is checked
more strictly first (ints must be JSON ints, sizes bounded, numbers finite), so that a hostile
file meets a clear refusal instead of whatever a constructor does with a wrong type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from ..layers.base import LAYER_REGISTRY
from ._format import (
    MAX_DIM,
    MAX_HISTORY_EPOCHS,
    MAX_HISTORY_KEYS,
    MAX_JSON_DEPTH,
    MAX_LAYERS,
    Invalid,
)


def _show(value) -> str:
    return f"{value!r:.60}"


def parse_json(data: bytes) -> dict:
    """config.json's object, refused if it is not UTF-8 JSON, nests deeper than
    MAX_JSON_DEPTH or holds NaN or infinity anywhere."""
    try:
        config = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise Invalid("config.json nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, ints of 4300+ digits
        raise Invalid(f"config.json is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise Invalid("config.json must hold an object")
    stack = [(config, "", 1)]
    while stack:  # iterative: a deep tree must not recurse here either
        value, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise Invalid(f"config.json nests deeper than {MAX_JSON_DEPTH} levels at {where}")
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(f"{where} is {value}; a model file holds finite numbers only")
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else k, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    return config


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise Invalid(message)


def exact_int(value, where: str, lo: int = 1, hi: int = MAX_DIM) -> int:
    expect(
        type(value) is int and lo <= value <= hi,
        f"{where} must be an integer in [{lo}, {hi}], got {_show(value)}",
    )
    return value


def number(value, where: str, lo: float, hi: float, hi_open: bool = True) -> float:
    ok = type(value) in (int, float) and abs(value) < 1e300 and lo <= value
    ok = ok and (value < hi if hi_open else value <= hi)
    expect(
        ok, f"{where} must be a number in [{lo}, {hi}{')' if hi_open else ']'}, got {_show(value)}"
    )
    return float(value)


def _bool(value, where):
    expect(isinstance(value, bool), f"{where} must be true or false, got {_show(value)}")


def _string(value, where):
    expect(isinstance(value, str) and len(value) <= 256, f"{where} must be a short string")


def _optional_string(value, where):
    if value is not None:
        _string(value, where)


def _positive_float(value, where):
    expect(
        type(value) in (int, float) and 0 < value < 1e300,
        f"{where} must be a finite positive number, got {_show(value)}",
    )


def _seed(value, where):
    if value is not None:
        exact_int(value, where, 0, 2**63 - 1)


def _dims(value, where, allow_none: bool, allow_minus_one: bool = False):
    expect(isinstance(value, list) and 1 <= len(value) <= 8, f"{where} must be a list of 1-8 sizes")
    for i, d in enumerate(value):
        if (d is None and allow_none) or (d == -1 and allow_minus_one and type(d) is int):
            continue
        exact_int(d, f"{where}[{i}]")
    if allow_minus_one:
        expect(value.count(-1) <= 1, f"{where}: at most one size may be -1")


def _window(value, where):  # an int or a list of ints (kernel_size, strides, pool_size)
    if value is None and where.endswith("strides"):
        return
    if type(value) is int:
        exact_int(value, where)
    else:
        _dims(value, where, allow_none=False)


def _rate(value, where):
    number(value, where, 0.0, 1.0)


def _axis(value, where):  # an int, or a list of ints (Softmax, LayerNormalization)
    if isinstance(value, list):
        expect(1 <= len(value) <= 8, f"{where} must be an axis or a list of 1-8 axes")
        for i, a in enumerate(value):
            exact_int(a, f"{where}[{i}]", -8, 8)
    else:
        exact_int(value, where, -8, 8)


def _slope(value, where):  # ReLU's negative_slope, threshold and max_value (null: none)
    if value is not None or not where.endswith("max_value"):
        number(value, where, 0.0, 1e300)


def _nested_layer(value, where):
    if value is not None:
        check_layer_entry(value, where)


_RULES: dict[str, Callable] = {
    **dict.fromkeys(("units", "filters", "input_dim", "output_dim"), exact_int),
    "input_length": lambda v, w: v is None or exact_int(v, w),
    **dict.fromkeys(
        (
            "trainable",
            "use_bias",
            "center",
            "scale",
            "mask_zero",
            "return_sequences",
            "return_state",
            "go_backwards",
            "stateful",
            "unroll",
            "zero_output_for_mask",
            "unit_forget_bias",
            "reset_after",
            "keepdims",
        ),
        _bool,
    ),  # fmt: skip
    **dict.fromkeys(("name", "activation", "recurrent_activation", "padding"), _string),
    **dict.fromkeys(("data_format", "dtype", "merge_mode"), _optional_string),
    **dict.fromkeys(("rate", "dropout", "recurrent_dropout", "momentum"), _rate),
    "epsilon": _positive_float,
    "seed": _seed,
    "axis": _axis,
    "n": exact_int,
    **dict.fromkeys(("negative_slope", "threshold", "max_value"), _slope),
    **dict.fromkeys(
        ("input_shape", "shape", "batch_input_shape"),
        lambda v, w: v is None or _dims(v, w, allow_none=True),
    ),  # fmt: skip
    "target_shape": lambda v, w: _dims(v, w, allow_none=False, allow_minus_one=True),
    **dict.fromkeys(("kernel_size", "strides", "pool_size"), _window),
    "dilation_rate": _window,
    "size": exact_int,
    **dict.fromkeys(("layer", "backward_layer"), _nested_layer),
}


def check_layer_entry(entry, where: str, functional: bool = False) -> type:
    """Check a ``{"class_name": ..., "config": {...}}`` layer entry field by field (and its
    ``inbound_nodes`` in a functional model); returns the layer class."""
    expect(isinstance(entry, dict), f"{where} is not an object")
    fields = {"class_name", "config", "inbound_nodes"} if functional else {"class_name", "config"}
    expect(set(entry) <= fields, f"{where} has unknown fields")
    if functional:
        calls = entry.get("inbound_nodes")
        expect(
            isinstance(calls, list) and len(calls) <= MAX_LAYERS,
            f"{where}.inbound_nodes must be a list",
        )
        for k, refs in enumerate(calls):
            _tensor_refs(refs, f"{where}.inbound_nodes[{k}]")
    name = entry.get("class_name")
    cls = LAYER_REGISTRY.get(name) if isinstance(name, str) else None
    expect(cls is not None, f"{where}: unknown layer type {_show(name)}")
    config = entry.get("config")
    expect(isinstance(config, dict), f"{where} ({name}): config is not an object")
    for key, value in config.items():
        rule = _RULES.get(key)
        if rule is None and key.endswith("_initializer"):
            rule = _string
        expect(rule is not None, f"{where} ({name}): invalid config: unknown field {_show(key)}")
        rule(value, f"{where}.config.{key}")
    return cls


def _tensor_refs(refs, where: str) -> None:
    """A list of ``[layer name, node index]`` references (a node's inputs, a model's ends)."""
    expect(isinstance(refs, list) and 0 < len(refs) <= MAX_LAYERS, f"{where} must be a list")
    for i, ref in enumerate(refs):
        expect(
            isinstance(ref, list) and len(ref) == 2 and isinstance(ref[0], str),
            f"{where}[{i}] must be [layer name, node index]",
        )
        exact_int(ref[1], f"{where}[{i}][1]", 0, MAX_LAYERS)


def check_model_section(section) -> tuple[str, list, dict]:
    """The kind (``Sequential`` or ``Functional``), layer entries and config of config.json's
    ``model`` section, the config's own fields checked."""
    kind = section.get("class_name") if isinstance(section, dict) else None
    expect(
        kind in ("Sequential", "Functional"),
        "model.class_name must be 'Sequential' or 'Functional'",
    )
    mc = section.get("config")
    expect(
        isinstance(mc, dict) and isinstance(mc.get("layers"), list), "model.config.layers missing"
    )
    layers = mc["layers"]
    expect(0 < len(layers) <= MAX_LAYERS, f"the model must have 1 to {MAX_LAYERS} layers")
    _string(mc.get("name", "model"), "model.config.name")
    if kind == "Sequential":
        expect(set(mc) <= {"name", "layers", "input_shape"}, "model.config has unknown fields")
        _dims(mc.get("input_shape"), "model.config.input_shape", allow_none=True)
    else:
        expect(
            set(mc) <= {"name", "layers", "input_layers", "output_layers"},
            "model.config has unknown fields",
        )
        _tensor_refs(mc.get("input_layers"), "model.config.input_layers")
        _tensor_refs(mc.get("output_layers"), "model.config.output_layers")
    return kind, layers, mc


def check_compile_section(cc) -> tuple[dict, dict]:
    """The optimizer config and the other compile arguments (loss, metrics, and where saved,
    weighted_metrics and loss_weights) of the ``compile`` section. A model with several outputs
    keeps a list of losses and, per output, a loss weight and lists of metric names; a file
    of one loss keeps a loss and lists of names (the optimizer's own fields are checked by
    ``Optimizer.from_config``)."""
    expect(isinstance(cc, dict), "compile is not an object")
    expect(
        set(cc) <= {"optimizer", "loss", "metrics", "weighted_metrics", "loss_weights"},
        "compile has unknown fields",
    )
    optimizer = cc.get("optimizer")
    expect(
        isinstance(optimizer, dict) and isinstance(optimizer.get("class_name"), str),
        "compile.optimizer must be an object with a class_name",
    )
    loss = cc.get("loss")
    outputs = None
    if isinstance(loss, list):  # one per output
        outputs = len(loss)
        expect(0 < outputs <= MAX_LAYERS, "compile.loss must list one loss per output")
        for i, entry in enumerate(loss):
            _loss_id(entry, f"compile.loss[{i}]")
    else:
        _loss_id(loss, "compile.loss")
    args = {"loss": loss}
    for field in ("metrics", "weighted_metrics"):
        value = cc.get(field)
        if value is None:
            value = [] if outputs is None else [[] for _ in range(outputs)]
        if outputs is None:
            _names(value, f"compile.{field}")
        else:
            expect(
                isinstance(value, list) and len(value) == outputs,
                f"compile.{field} must hold one list of names per output",
            )
            for i, names in enumerate(value):
                _names(names, f"compile.{field}[{i}]")
        args[field] = value
    weights = cc.get("loss_weights")
    if weights is not None:
        expect(
            isinstance(weights, list) and len(weights) == (outputs or 1),
            "compile.loss_weights must hold one number per output",
        )
        for i, w in enumerate(weights):
            number(w, f"compile.loss_weights[{i}]", -1e30, 1e30)
        args["loss_weights"] = weights
    return optimizer, args


def _loss_id(loss, where: str) -> None:
    if isinstance(loss, dict):
        expect(set(loss) <= {"name", "from_logits"}, f"{where} has unknown fields")
        _string(loss.get("name"), f"{where}.name")
        _bool(loss.get("from_logits", False), f"{where}.from_logits")
    else:
        _string(loss, where)


def _names(value, where: str) -> None:
    expect(
        isinstance(value, list) and len(value) <= 256 and all(isinstance(m, str) for m in value),
        f"{where} must be a list of names",
    )
    for i, m in enumerate(value):
        _string(m, f"{where}[{i}]")


def check_history(history) -> dict[str, list[float | None]]:
    """The ``training.history`` section: per log name (``loss``, ``val_accuracy``, ...) one
    list of finite numbers (null where an epoch lacks that log), all of one length, at most
    MAX_HISTORY_KEYS names and MAX_HISTORY_EPOCHS epochs."""
    if history is None:
        return {}
    expect(isinstance(history, dict), "training.history must be an object")
    expect(
        len(history) <= MAX_HISTORY_KEYS,
        f"training.history holds {len(history)} logs, more than {MAX_HISTORY_KEYS}",
    )
    lengths = set()
    for key, values in history.items():
        where = f"training.history.{key:.60}"
        expect(0 < len(key) <= 256, "training.history has an empty or overlong log name")
        expect(
            isinstance(values, list) and len(values) <= MAX_HISTORY_EPOCHS,
            f"{where} must be a list of at most {MAX_HISTORY_EPOCHS} numbers",
        )
        for i, v in enumerate(values):
            if v is not None:
                number(v, f"{where}[{i}]", -1e300, 1e300)
        lengths.add(len(values))
    expect(len(lengths) <= 1, "training.history's lists have different lengths")
    return {k: [None if v is None else float(v) for v in values] for k, values in history.items()}
