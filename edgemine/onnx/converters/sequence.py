"""RepeatVector, TimeDistributed, SpatialDropout1D, LayerNormalization and the activation
layers ReLU, LeakyReLU and Softmax.

RepeatVector is ``Unsqueeze`` + ``Tile``. TimeDistributed(Dense) is the Dense converter over the
whole (batch, steps, features) tensor (MatMul + Add on the last axis); any other inner layer
runs on the steps folded into the batch (``Reshape``, its converter, ``Reshape`` back).
LayerNormalization is ONNX's ``LayerNormalization`` from opset 17 and its primitive ops below.
ReLU is ``Relu`` / ``LeakyRelu`` (+ ``Clip``) where those say it, else a ``Where`` of Keras's
two branches.

Example:
    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import LSTM, Dense, RepeatVector, TimeDistributed
    >>> from edgemine.onnx import to_onnx
    >>> m = Sequential([LSTM(4, input_shape=(6, 2)), RepeatVector(6),
    ...                 LSTM(4, return_sequences=True), TimeDistributed(Dense(2))])
    >>> [n.op_type for n in to_onnx(m).graph.node][-4:]
    ['Transpose', 'Reshape', 'MatMul', 'Add']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import converter, find


@converter("RepeatVector")
def convert_repeat_vector(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """(batch, features) -> Unsqueeze(axis 1) -> Tile(1, n, 1)."""
    name = layer.name
    axes = ctx.const(np.array([1], np.int64), f"{name}/axes")
    y = ctx.op("Unsqueeze", [ctx.tensor, axes], name)
    reps = ctx.const(np.array([1, layer.n, 1], np.int64), f"{name}/repeats")
    ctx.set(ctx.op("Tile", [y, reps], name), layer.output_shape)


@converter("SpatialDropout1D")
def convert_spatial_dropout(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Identity at inference: the graph is unchanged."""


@converter("TimeDistributed")
def convert_time_distributed(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """The inner layer's converter: directly for Dense (it works on the last axis of any
    rank), else on the steps folded into the batch."""
    from ..exporter import IDENTITY_LAYERS, layer_error

    inner = layer.layer
    kind = type(inner).__name__
    if kind in IDENTITY_LAYERS:  # Dropout: nothing at inference
        return
    convert = find(kind, ctx.opset)
    if convert is None:
        raise layer_error(layer, f"the wrapped {kind} has no ONNX converter")
    x = ctx.keras_layout(layer.name)
    if kind == "Dense":
        ctx.set(x, layer.input_shape)
        _convert_inner(ctx, convert, inner, params, layer.output_shape)
        return
    steps = layer.input_shape[0]
    if steps is None:
        raise layer_error(layer, "a TimeDistributed layer over unknown steps has no ONNX graph")
    folded = ctx.const(np.array([-1, *inner.input_shape], np.int64), f"{layer.name}/fold")
    ctx.set(ctx.op("Reshape", [x, folded], layer.name), inner.input_shape)
    _convert_inner(ctx, convert, inner, params, inner.output_shape)
    y = ctx.keras_layout(layer.name)
    shape = ctx.const(np.array([-1, steps, *inner.output_shape], np.int64), f"{layer.name}/unfold")
    ctx.set(ctx.op("Reshape", [y, shape], layer.name), layer.output_shape)


def _convert_inner(ctx: Any, convert, inner: Any, params: dict, out_shape: tuple) -> None:
    """Run the inner layer's converter; the output shape it leaves is the wrapper's."""
    mask = ctx.mask
    convert(ctx, inner, params)
    ctx.mask = mask
    ctx.set(ctx.tensor, out_shape, ctx.layout)


@converter("LayerNormalization", since=17)
def convert_layer_norm(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """ONNX LayerNormalization over the trailing axes (scale of ones when ``scale=False``)."""
    x = ctx.keras_layout(layer.name)
    shape = layer.input_shape[-len(_norm_shape(layer, params)) :]
    gamma = params.get("gamma", np.ones(shape, np.float32))
    inputs = [x, ctx.const(gamma, f"{layer.name}/gamma")]
    if "beta" in params:
        inputs.append(ctx.const(params["beta"], f"{layer.name}/beta"))
    axis = -len(shape)
    y = ctx.op("LayerNormalization", inputs, layer.name, axis=axis, epsilon=layer.epsilon)
    ctx.set(y, layer.output_shape)


@converter("LayerNormalization", until=16)
def convert_layer_norm_primitive(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Before opset 17: ReduceMean, Sub, Mul, ReduceMean, Add, Sqrt, Div, then gamma and beta."""
    name = layer.name
    x = ctx.keras_layout(name)
    n = len(_norm_shape(layer, params))
    axes = list(range(-n, 0))
    mean = ctx.op("ReduceMean", [x], name, axes=axes, keepdims=1)
    centred = ctx.op("Sub", [x, mean], name)
    var = ctx.op("ReduceMean", [ctx.op("Mul", [centred, centred], name)], name, axes=axes)
    eps = ctx.const(np.array(layer.epsilon, np.float32), f"{name}/epsilon")
    std = ctx.op("Sqrt", [ctx.op("Add", [var, eps], name)], name)
    y = ctx.op("Div", [centred, std], name)
    if "gamma" in params:
        y = ctx.op("Mul", [y, ctx.const(params["gamma"], f"{name}/gamma")], name)
    if "beta" in params:
        y = ctx.op("Add", [y, ctx.const(params["beta"], f"{name}/beta")], name)
    ctx.set(y, layer.output_shape)


def _norm_shape(layer: Any, params: dict) -> tuple:
    return layer._normalised_shape(tuple(layer.input_shape))


@converter("ReLU", "LeakyReLU")
def convert_relu(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Relu, LeakyRelu, Relu + Clip, or Where(x > threshold, min(x, max), slope * (x - t))."""
    name, x = layer.name, ctx.tensor
    slope, top, thr = layer.negative_slope, layer.max_value, layer.threshold
    if thr == 0 and (slope == 0 or top is None):
        y = ctx.op("Relu", [x], name) if slope == 0 else ctx.op("LeakyRelu", [x], name, alpha=slope)
        if top is not None:
            low = ctx.const(np.array(0.0, np.float32), f"{name}/min")
            high = ctx.const(np.array(top, np.float32), f"{name}/max")
            y = ctx.op("Clip", [y, low, high], name)
    else:
        t = ctx.const(np.array(thr, np.float32), f"{name}/threshold")
        above = (
            x
            if top is None
            else ctx.op("Min", [x, ctx.const(np.array(top, np.float32), f"{name}/max")], name)
        )
        below = ctx.op(
            "Mul",
            [ctx.op("Sub", [x, t], name), ctx.const(np.array(slope, np.float32), f"{name}/slope")],
            name,
        )
        y = ctx.op("Where", [ctx.op("Greater", [x, t], name), above, below], name)
    ctx.set(y, layer.output_shape, ctx.layout)


@converter("Softmax")
def convert_softmax(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Softmax over one axis; over several adjacent axes, Exp(x - ReduceLogSumExp(x))."""
    x = ctx.keras_layout(layer.name)
    axes = list(layer._positive_axes(len(layer.input_shape) + 1))
    if len(axes) == 1:
        y = ctx.op("Softmax", [x], layer.name, axis=axes[0])
    else:
        if ctx.opset >= 18:  # the reduction's axes became an input in opset 18
            axes_t = ctx.const(np.array(axes, np.int64), f"{layer.name}/axes")
            lse = ctx.op("ReduceLogSumExp", [x, axes_t], layer.name, keepdims=1)
        else:
            lse = ctx.op("ReduceLogSumExp", [x], layer.name, axes=axes, keepdims=1)
        y = ctx.op("Exp", [ctx.op("Sub", [x, lse], layer.name)], layer.name)
    ctx.set(y, layer.output_shape)
