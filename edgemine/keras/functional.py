"""Functional Keras models (``Functional`` / ``Model`` configs) as calls of edgemine layers.

Each layer entry lists its calls in the model (``inbound_nodes``), in one of two spellings:

- Keras 3: ``[{"args": [T], "kwargs": {}}, ...]`` where ``T`` is a tensor,
  ``{"class_name": "__keras_tensor__", "config": {"keras_history": [layer, node, tensor]}}``,
  or a list of tensors (a merge);
- Keras 2 / tf.keras: ``[[[layer, node, tensor, {kwargs}], ...], ...]``, one list per call.

Every call is read into ``[layer, node, output]`` references, the calls ordered so that each
comes after the calls it reads, and the shapes worked out along that order before anything is
allocated; the loader then rebuilds the graph with :func:`edgemine.models.config.rebuild_graph`.
A call that edgemine cannot make as Keras does (keyword arguments such as ``training=True``,
``initial_state=`` or a ``mask=`` other than the Embedding mask edgemine passes itself, the
second output of a layer, an operation on a constant) is refused with a one-line error naming
the layer.

Keras 3 records arithmetic between tensors (``a + b``) as operation entries (module
``keras.src.ops...``), and tf.keras 2 as ``TFOpLambda`` layers; those between two tensors of
one shape (add, subtract, multiply, maximum, minimum) become the matching merge layer. Keras 3
also records ``Embedding(mask_zero=True)``'s mask as a ``not_equal(ids, 0)`` operation passed
on as ``mask=``; edgemine computes that mask itself, so the entry is only checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..layers import Embedding, InputLayer, Layer, merge
from .config import (
    INPUT_DTYPES,
    Where,
    check_dtype,
    class_name,
    declared_shape,
    make_layer,
    refuse_masked,
)
from .weights import expected_shapes

MAX_CALLS = 16384  # calls of layers in one model (a layer may be called several times)
_INPUT_OPTIONS = {"batch_shape", "batch_input_shape", "dtype", "name", "sparse", "ragged"}
_INPUT_FIXED = {"sparse": False, "ragged": False, "optional": False}
#: call keyword arguments that change nothing when None (Keras 3 writes some of them)
_NEUTRAL_KWARGS = {"mask", "training", "name"}
#: Keras 3 operations (keras.ops) and tf.keras 2 TFOpLambda functions that are merges
_OP_MERGES = {
    "Add": merge.Add,
    "Subtract": merge.Subtract,
    "Multiply": merge.Multiply,
    "Maximum": merge.Maximum,
    "Minimum": merge.Minimum,
    "__operators__.add": merge.Add,
    "math.add": merge.Add,
    "math.subtract": merge.Subtract,
    "math.multiply": merge.Multiply,
    "math.maximum": merge.Maximum,
    "math.minimum": merge.Minimum,
}
_OP_HINT = (
    "edgemine converts operations between two tensors of one shape that are merges "
    f"({', '.join(sorted({c.__name__ for c in _OP_MERGES.values()}))})"
)


@dataclass
class Call:
    """One call of a layer: the tensors it reads (``[layer, node, output]``) and whether as a
    list."""

    layer: str
    index: int
    refs: list[list]
    many: bool
    mask: list | None = None  # Keras 3: the tensor it passes as mask= (a not_equal entry)


@dataclass
class FunctionalSpec:
    """What a functional config says, checked: the layers by name (in the config's order), the
    calls in an order where each comes after those it reads, and the model's inputs/outputs."""

    name: str
    layers: dict[str, Layer]
    kinds: dict[str, str]
    entries: dict[str, dict]
    calls: list[Call]
    inputs: list[list]
    outputs: list[list]
    ops: set[str] = field(default_factory=set)  # operation entries (not layers in Keras)
    mask_ops: dict[str, list] = field(default_factory=dict)  # not_equal entry -> its ids


def input_layer(entry: dict, where: Where) -> InputLayer:
    """An edgemine InputLayer for a Keras InputLayer entry (shape, dtype and name checked).

    >>> e = {"class_name": "InputLayer", "config": {"batch_shape": [None, 7], "dtype": "int32",
    ...      "name": "ids"}}
    >>> layer = input_layer(e, Where("m.keras"))
    >>> layer.name, layer.output.shape, layer.dtype
    ('ids', (None, 7), 'int32')
    """
    config = entry.get("config")
    if not isinstance(config, dict):
        raise where.fail("the InputLayer entry has no config object")
    at = where.layer(config.get("name", "?"), "InputLayer")
    for key, value in config.items():
        if key in _INPUT_FIXED and value != _INPUT_FIXED[key]:
            raise at.fail(f"option {key}={value!r} is not supported")
        if key not in _INPUT_OPTIONS | set(_INPUT_FIXED):
            raise at.fail(f"option {key!r} is not supported")
    dtype = check_dtype(config.get("dtype"), at, INPUT_DTYPES)
    shape = declared_shape(
        config.get("batch_shape", config.get("batch_input_shape")), at, "batch_shape"
    )
    if shape is None:
        raise at.fail("the input declares no shape")
    name = config.get("name")
    return InputLayer(
        shape=shape,
        dtype="int32" if dtype and "int" in dtype else "float32",
        name=str(name) if name is not None else None,
    )


def _entry_name(entry: Any, where: Where) -> str:
    config = entry.get("config") if isinstance(entry, dict) else None
    name = config.get("name") if isinstance(config, dict) else None
    if name is None and isinstance(entry, dict):
        name = entry.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise where.fail(f"a layer entry has no usable name ({str(name)[:40]!r})")
    return name


def _op_layer(entry: dict, name: str, where: Where) -> Layer:
    """A merge layer for a Keras 3 operation entry or a tf.keras 2 TFOpLambda entry."""
    kind = entry.get("class_name")
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    key = config.get("function") if kind == "TFOpLambda" else kind
    at = where.layer(name, str(kind))
    cls = _OP_MERGES.get(key) if isinstance(key, str) else None
    if cls is None:
        raise at.fail(f"the operation {key!r} is not supported ({_OP_HINT})")
    return cls(name=name)


def _is_op(entry: dict) -> bool:
    """An operation entry: tf.keras 2's TFOpLambda, or Keras 3's operation (module
    ``keras.src.ops...``; in a legacy .h5, which drops the module, an entry called with two
    positional arguments, which no layer takes)."""
    module = entry.get("module")
    if entry.get("class_name") == "TFOpLambda":
        return True
    if isinstance(module, str):
        return module.startswith("keras.src.ops")
    nodes = entry.get("inbound_nodes")
    return (
        isinstance(nodes, list)
        and bool(nodes)
        and all(isinstance(n, dict) and isinstance(n.get("args"), list) for n in nodes)
        and all(len(n["args"]) == 2 for n in nodes)
    )


def _tensor_ref(value: Any, at: Where) -> list:
    """``[layer, node, output]`` of a tensor reference in either spelling."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        inner = value.get("config")
        value = inner.get("keras_history") if isinstance(inner, dict) else None
    ok = isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str)
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value[1:3])
    if not ok:
        raise at.fail(f"a call reads {str(value)[:60]}, not a tensor reference")
    return [value[0], value[1], value[2]]


def _first_output(ref: list, at: Where) -> tuple[str, int]:
    """The key of a reference to a layer's output; refuses its other outputs. (Checked once
    the layer itself was read, so that an option like return_state is named first.)"""
    if ref[2] != 0:
        raise at.fail(
            f"it reads output {ref[2]} of layer {ref[0]!r}: edgemine's layers return one "
            "tensor each (return_state and other several-output calls do not convert)"
        )
    return (ref[0], ref[1])


def _is_tensor(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _check_kwargs(
    kwargs: Any, at: Where, keras3: bool, op: bool = False
) -> tuple[list | None, list]:
    """The call's mask tensor (Keras 3 records the mask it passes: ``mask=not_equal(ids, 0)``)
    and tensor arguments a TFOpLambda takes by keyword (``y``); refuses the other keyword
    arguments. Keras 3 also records ``training=False`` for every layer that takes it, and
    overrides it in fit and predict, so False passes; tf.keras 2 records only what the code
    said, and kept it, so nothing but None passes there."""
    if not isinstance(kwargs, dict):
        raise at.fail("a call's keyword arguments must be an object")
    mask, tensors = None, []
    for key, value in kwargs.items():
        if key == "y" and isinstance(value, list) and op and not keras3:
            tensors.append(value)
        elif key == "mask" and keras3 and _is_tensor(value):
            mask = _tensor_ref(value, at)
        elif value is None and key in _NEUTRAL_KWARGS:
            continue
        elif not (key == "training" and value is False and keras3):
            raise at.fail(
                f"it is called with {key}={str(value)[:40]}, which edgemine cannot pass "
                "(layers convert when called on tensors alone)"
            )
    return mask, tensors


def _keras3_call(node: dict, at: Where, op: bool) -> Call:
    args = node.get("args")
    if not isinstance(args, list) or not args:
        raise at.fail("a call has no tensor arguments")
    mask, _ = _check_kwargs(node.get("kwargs", {}), at, keras3=True)
    if op:  # add(a, b): two tensors, no constants
        if len(args) != 2 or not all(_is_tensor(a) for a in args):
            raise at.fail(f"the operation must take two tensors ({_OP_HINT}), not constants")
        return Call(at.name, 0, [_tensor_ref(a, at) for a in args], True, mask)
    if len(args) != 1:
        raise at.fail(f"it is called with {len(args)} positional arguments; edgemine takes one")
    if isinstance(args[0], list):
        return Call(at.name, 0, [_tensor_ref(a, at) for a in args[0]], True, mask)
    return Call(at.name, 0, [_tensor_ref(args[0], at)], False, mask)


def _keras2_call(node: list, at: Where, op: bool) -> Call:
    refs = []
    for ref in node:
        if not isinstance(ref, list) or len(ref) not in (3, 4):
            raise at.fail(f"a call reads {str(ref)[:60]}, not a tensor reference")
        _, extra = _check_kwargs(ref[3] if len(ref) == 4 else {}, at, keras3=False, op=op)
        refs.append(_tensor_ref(ref[:3], at))
        refs.extend(_tensor_ref(t, at) for t in extra)
    if op and len(refs) != 2:
        raise at.fail(f"the operation must take two tensors ({_OP_HINT}), not constants")
    return Call(at.name, 0, refs, len(refs) > 1)


def read_calls(entry: dict, at: Where, op: bool) -> list[Call]:
    """The calls of one layer entry (``at`` names it), in either spelling; each reference is
    ``[layer, node, output]``.

    >>> t = {"class_name": "__keras_tensor__", "config": {"keras_history": ["x", 0, 0]}}
    >>> read_calls({"inbound_nodes": [{"args": [t], "kwargs": {}}]}, Where("m", "d"), False)
    [Call(layer='d', index=0, refs=[['x', 0, 0]], many=False, mask=None)]
    >>> [c.refs for c in read_calls({"inbound_nodes": [[["x", 0, 0, {}], ["y", 0, 0, {}]]]},
    ...                             Where("m", "add"), False)]
    [[['x', 0, 0], ['y', 0, 0]]]
    """
    nodes = entry.get("inbound_nodes", [])
    if not isinstance(nodes, list):
        raise at.fail("inbound_nodes must be a list")
    calls = []
    for k, node in enumerate(nodes):
        if isinstance(node, dict):
            call = _keras3_call(node, at, op)
        elif isinstance(node, list) and node:
            call = _keras2_call(node, at, op)
        else:
            raise at.fail(f"a call {str(node)[:60]} is neither Keras 3's nor Keras 2's form")
        call.index = k
        calls.append(call)
    return calls


def _mask_op(entry: dict, at: Where) -> list:
    """The token tensor of Keras 3's ``not_equal(ids, 0)`` entry: an Embedding's mask, which
    edgemine computes itself. Keras 3 records it to pass it on as ``mask=``."""
    nodes = entry.get("inbound_nodes")
    node = nodes[0] if isinstance(nodes, list) and len(nodes) == 1 else None
    args = node.get("args") if isinstance(node, dict) else None
    if not (isinstance(args, list) and len(args) == 2 and _is_tensor(args[0])) or args[1] != 0:
        raise at.fail(f"the operation NotEqual is not supported ({_OP_HINT})")
    _check_kwargs(node.get("kwargs", {}), at, keras3=True)
    return _tensor_ref(args[0], at)


def model_refs(value: Any, what: str, where: Where) -> list[list]:
    """``input_layers`` / ``output_layers``: one ``[layer, node, tensor]``, a list of them, or a
    dict of them (ordered by key, as Keras flattens a dict)."""
    if isinstance(value, dict):
        value = [value[k] for k in sorted(value)]
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = [value]  # Keras 3 writes a single input or output unwrapped
    if not isinstance(value, list) or not value:
        raise where.fail(f"the functional config's {what} is missing or empty")
    return [_tensor_ref(v, where) for v in value]


def read_functional(cfg: dict, name: str, entries: list, where: Where) -> FunctionalSpec:
    """The calls, inputs and outputs of a functional config (``cfg``), checked; the input and
    operation layers made (the others are made by :func:`infer_shapes`, which knows their
    input rank)."""
    spec = FunctionalSpec(name, {}, {}, {}, [], [], [])
    calls: list[Call] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise where.fail("a layer entry must be an object")
        lname = _entry_name(entry, where)
        if lname in spec.kinds:
            raise where.fail(f"two layers are named {lname!r}")
        op = _is_op(entry)
        kind = str(entry.get("class_name")) if op else class_name(entry, where)
        spec.kinds[lname], spec.entries[lname] = kind, entry
        at = where.layer(lname, kind)
        if kind == "InputLayer":
            if entry.get("inbound_nodes"):
                raise at.fail("an InputLayer cannot be called")
            spec.layers[lname] = input_layer(entry, where)
        elif op and kind == "NotEqual":
            spec.mask_ops[lname] = _mask_op(entry, at)
            continue
        elif op:
            spec.layers[lname] = _op_layer(entry, lname, where)
            spec.ops.add(lname)
        calls.extend(read_calls(entry, at, op))
        if len(calls) > MAX_CALLS:
            raise where.fail(f"the model makes more than {MAX_CALLS} layer calls")
    spec.inputs = model_refs(cfg.get("input_layers"), "input_layers", where)
    spec.outputs = model_refs(cfg.get("output_layers"), "output_layers", where)
    for ref in spec.inputs:
        if spec.kinds.get(ref[0]) != "InputLayer" or ref[1:] != [0, 0]:
            raise where.fail(f"model input {ref[0]!r} is not an InputLayer of the model")
    spec.calls = order_calls(calls, spec.kinds, where)
    return spec


def order_calls(calls: list[Call], kinds: dict[str, str], where: Where) -> list[Call]:
    """The calls in an order where each comes after the calls it reads (Kahn's algorithm);
    refuses references to nothing and cycles."""
    made = {(n, 0) for n, kind in kinds.items() if kind == "InputLayer"}
    by_key = {(c.layer, c.index): c for c in calls}
    waiting: dict[tuple, list[Call]] = {}
    missing_count = {}
    ready = []
    for call in calls:
        keys = {(r[0], r[1]) for r in call.refs} - made
        for key in keys:
            if key not in by_key:
                at = where.layer(call.layer, kinds[call.layer])
                raise at.fail(
                    f"it reads call {key[1]} of {key[0]!r}, which is not a layer call of the model"
                )
            waiting.setdefault(key, []).append(call)
        missing_count[id(call)] = len(keys)
        if not keys:
            ready.append(call)
    order = []
    while ready:
        call = ready.pop()
        order.append(call)
        for reader in waiting.get((call.layer, call.index), []):
            missing_count[id(reader)] -= 1
            if missing_count[id(reader)] == 0:
                ready.append(reader)
    if len(order) != len(calls):
        stuck = next(c for c in calls if missing_count[id(c)] > 0)
        raise where.fail(f"the layer graph has a cycle through layer {stuck.layer!r}")
    return order


def infer_shapes(spec: FunctionalSpec, where: Where) -> dict[str, list[tuple]]:
    """Each layer's weight shapes, from the shapes along the graph (nothing allocated).
    A shared layer must see one input shape at all its calls."""
    shapes: dict[tuple, Any] = {
        (n, 0): tuple(layer.input_spec_shape)
        for n, layer in spec.layers.items()
        if isinstance(layer, InputLayer)
    }
    masks: dict[tuple, Any] = {}  # tensor -> the ids tensor whose != 0 is its mask, or None
    seen: dict[str, Any] = {}
    weights: dict[str, list[tuple]] = {}
    for call in spec.calls:
        at = where.layer(call.layer, spec.kinds[call.layer])
        ins = [shapes[_first_output(r, at)] for r in call.refs]
        shape_in = ins if call.many else ins[0]
        if call.layer not in spec.layers:
            rank = len(ins[0]) + 1
            spec.layers[call.layer] = make_layer(spec.entries[call.layer], where, rank)
        layer = spec.layers[call.layer]
        if any(masks.get((r[0], r[1])) is not None for r in call.refs):
            refuse_masked(layer, where)
        if layer.multi_input != call.many:
            want = "a list of tensors" if layer.multi_input else "one tensor"
            raise at.fail(f"it takes {want}, but the file calls it on {len(call.refs)}")
        if call.layer in seen:
            if seen[call.layer] != shape_in:
                raise at.fail(
                    f"a shared layer must take one input shape, got {seen[call.layer]} and "
                    f"{shape_in}"
                )
        else:
            seen[call.layer] = shape_in
            try:
                weights[call.layer] = expected_shapes(layer, shape_in)
            except (TypeError, ValueError) as e:
                raise at.fail(f"input {shape_in}: {str(e).splitlines()[0]}") from None
        try:
            shapes[(call.layer, call.index)] = tuple(layer.compute_output_shape(shape_in))
        except (TypeError, ValueError, IndexError) as e:
            raise at.fail(f"input {shape_in}: {str(e).splitlines()[0]}") from None
        masks[(call.layer, call.index)] = _mask_after(spec, call, layer, masks, at)
    for ref in spec.outputs:
        if _first_output(ref, where) not in shapes:
            raise where.fail(f"model output {ref[0]!r} call {ref[1]} is not made by the model")
    unused = [n for n in spec.kinds if n not in spec.layers and n not in spec.mask_ops]
    if unused:
        raise where.fail(f"layer {unused[0]!r} is never called in the model")
    return weights


def _mask_after(spec: FunctionalSpec, call: Call, layer: Layer, masks: dict, at: Where) -> Any:
    """The mask of a call's output, followed symbolically as edgemine computes it: the ids
    tensor (a key) whose ``!= 0`` it is, or None. A ``mask=`` that Keras 3 recorded must be
    the mask edgemine passes there itself."""
    ins = [masks.get((r[0], r[1])) for r in call.refs]
    if call.mask is not None:
        ids = spec.mask_ops.get(call.mask[0]) if call.mask[1] == 0 else None
        passed = {m for m in ins if m is not None}
        if ids is None or passed != {(ids[0], ids[1])}:
            raise at.fail(
                f"it is called with mask={call.mask[0]!r}, which is not the Embedding mask "
                "edgemine passes on (masks from other layers or operations do not convert)"
            )
    if isinstance(layer, Embedding):
        return (call.refs[0][0], call.refs[0][1]) if layer.mask_zero else None
    if layer.multi_input:
        passed = {m for m in ins if m is not None}
        return passed.pop() if len(passed) == 1 else ("mixed",) if passed else None
    if ins[0] is None:
        return None
    try:
        return layer.compute_mask(None, ins[0])
    except Exception:  # a layer that computes its mask from its input: not followed
        return ("unknown",)
