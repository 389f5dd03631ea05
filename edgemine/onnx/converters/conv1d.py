"""The 1-D layers on sequences in ONNX's channels-first layout (batch, channels, steps).

Conv1D is one ``Conv`` over one spatial axis (kernel (k, cin, f) -> (f, cin, k)) with explicit
``pads`` (causal padding: all of it on the left) and ``dilations``; Conv1DTranspose is one
``ConvTranspose`` (kernel (k, f, cin) -> (cin, f, k)) whose pads and ``output_padding`` give
Keras's output length. Pooling is ``MaxPool`` / ``AveragePool`` (``count_include_pad=0``: 'same'
averages the in-bounds steps); global pooling reduces the steps axis (a Keras mask: the sum of
the unmasked steps over their count); UpSampling1D is ``Unsqueeze`` + ``Expand`` + ``Reshape``.

Example:
    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import Conv1D, GlobalAveragePooling1D
    >>> from edgemine.onnx import to_onnx
    >>> m = Sequential([Conv1D(4, 3, padding="causal", input_shape=(10, 2)), GlobalAveragePooling1D()])
    >>> [n.op_type for n in to_onnx(m).graph.node]
    ['Transpose', 'Conv', 'ReduceMean']
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto

from ...kernels._shared import conv1d_geometry, conv1d_transpose_geometry
from . import converter


def _pads(length: int | None, k: int, stride: int, dilation: int, padding: str) -> dict:
    """The padding attributes: explicit ``pads``, or, for 'same' windows with a stride over a
    sequence of any length (``None``), ``auto_pad=SAME_UPPER`` (TensorFlow's rule: the extra pad
    at the end). Other pads do not depend on the length."""
    if length is None and padding == "same" and stride > 1:
        return {"auto_pad": "SAME_UPPER"}
    span = dilation * (k - 1) + 1
    _, left, right = conv1d_geometry(length or span, k, stride, dilation, padding)
    return {"pads": [left, right]}


def _conv_node(ctx: Any, layer: Any, op: str, params: dict, pads: dict, **extra: Any) -> None:
    """One ``op`` (Conv or ConvTranspose) over the steps; kernel (k, a, b) -> (b, a, k)."""
    inputs = [ctx.channels_first(layer.name)]
    inputs.append(ctx.const(params["kernel"].transpose(2, 1, 0), f"{layer.name}/kernel"))
    if params.get("bias") is not None:
        inputs.append(ctx.const(params["bias"], f"{layer.name}/bias"))
    k, s, d = layer.kernel_size, layer.strides, layer.dilation_rate
    attrs = {"kernel_shape": [k], "strides": [s], "dilations": [d], **pads, **extra}
    y = ctx.op(op, inputs, layer.name, **attrs)
    ctx.set(y, layer.output_shape, "BCT")
    ctx.tensor = ctx.activation(y, layer.activation, layer.name, layer)


@converter("Conv1D")
def convert_conv1d(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Conv1D: Conv with pads [left, right] and dilations; fused activation after it."""
    k, s, d = layer.kernel_size, layer.strides, layer.dilation_rate
    _conv_node(ctx, layer, "Conv", params, _pads(ctx.shape[0], k, s, d, layer.padding))


@converter("Conv1DTranspose")
def convert_conv1d_transpose(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Conv1DTranspose: ConvTranspose; output_padding makes up what the pads leave short (the
    same for every input length)."""
    steps = ctx.shape[0] or 1
    k, s, d = layer.kernel_size, layer.strides, layer.dilation_rate
    length, left = conv1d_transpose_geometry(steps, k, s, d, layer.padding)
    span = d * (k - 1) + 1
    right = max(span - s, 0) - left if layer.padding == "same" else 0
    extra = length - ((steps - 1) * s + span - left - right)
    pads = {"pads": [left, right]}
    _conv_node(ctx, layer, "ConvTranspose", params, pads, output_padding=[extra])


@converter("MaxPooling1D", "AveragePooling1D")
def convert_pool1d(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """MaxPooling1D -> MaxPool, AveragePooling1D -> AveragePool(count_include_pad=0)."""
    x = ctx.channels_first(layer.name)
    pads = _pads(ctx.shape[0], layer.pool_size, layer.strides, 1, layer.padding)
    attrs = {"kernel_shape": [layer.pool_size], "strides": [layer.strides], **pads}
    if type(layer).__name__ == "MaxPooling1D":
        y = ctx.op("MaxPool", [x], layer.name, **attrs)
    else:
        y = ctx.op("AveragePool", [x], layer.name, count_include_pad=0, **attrs)
    ctx.set(y, layer.output_shape, "BCT")


def _reduce(ctx: Any, op: str, x: str, axis: int, keepdims: bool, hint: str) -> str:
    """``op`` over one axis; the axes are an input from opset 18 (ReduceSum: from 13)."""
    if op == "ReduceSum" or ctx.opset >= 18:
        axes = ctx.const(np.array([axis], np.int64), f"axes_{axis}")
        return ctx.op(op, [x, axes], hint, keepdims=int(keepdims))
    return ctx.op(op, [x], hint, axes=[axis], keepdims=int(keepdims))


@converter("GlobalAveragePooling1D", "GlobalMaxPooling1D")
def convert_global_pool1d(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Global pooling: a reduction over the steps axis, in the current layout (keepdims keeps
    it as a 1-step sequence); with a Keras mask, the mean of the unmasked steps."""
    if ctx.layout == "TBF":  # a channels-first (BCT) sequence stays as it is
        ctx.batch_major(layer.name)
    steps_axis = 2 if ctx.layout == "BCT" else 1
    layout = ctx.layout if layer.keepdims else None
    if ctx.mask is not None and type(layer).__name__ == "GlobalAveragePooling1D":
        channel_axis = ctx.const(np.array([3 - steps_axis], np.int64), f"axes_{3 - steps_axis}")
        keep = ctx.op("Unsqueeze", [ctx.mask, channel_axis], layer.name)
        zero = ctx.const(np.zeros((), np.float32), "zero")
        kept = ctx.op("Where", [keep, ctx.tensor, zero], layer.name)  # NaN in a masked step too
        total = _reduce(ctx, "ReduceSum", kept, steps_axis, layer.keepdims, layer.name)
        weights = ctx.op("Cast", [keep], layer.name, to=TensorProto.FLOAT)
        count = _reduce(ctx, "ReduceSum", weights, steps_axis, layer.keepdims, layer.name)
        ctx.set(ctx.op("Div", [total, count], layer.name), layer.output_shape, layout)
        return
    op = "ReduceMax" if type(layer).__name__ == "GlobalMaxPooling1D" else "ReduceMean"
    y = _reduce(ctx, op, ctx.tensor, steps_axis, layer.keepdims, layer.name)
    ctx.set(y, layer.output_shape, layout)


@converter("UpSampling1D")
def convert_upsampling1d(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """UpSampling1D: each step repeated, as a broadcast along a new axis after the steps."""
    if ctx.layout == "TBF":  # a channels-first (BCT) sequence stays as it is
        ctx.batch_major(layer.name)
    channels = ctx.shape[1]
    if ctx.layout == "BCT":
        new_axis, times, shape = 3, [1, 1, 1, layer.size], [0, channels, -1]
    else:
        new_axis, times, shape = 2, [1, 1, layer.size, 1], [0, -1, channels]
    axis = ctx.const(np.array([new_axis], np.int64), f"axes_{new_axis}")
    x = ctx.op("Unsqueeze", [ctx.tensor, axis], layer.name)
    x = ctx.op(
        "Expand", [x, ctx.const(np.array(times, np.int64), f"{layer.name}/times")], layer.name
    )
    y = ctx.op(
        "Reshape", [x, ctx.const(np.array(shape, np.int64), f"{layer.name}/shape")], layer.name
    )
    ctx.set(y, layer.output_shape, ctx.layout)
