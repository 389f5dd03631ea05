"""Dense, Activation, Flatten and Reshape.

Dense over a rank-2 tensor is one ``Gemm``; over a longer tensor it is ``MatMul`` + ``Add`` on
the last axis, except on an NCHW image, where it is a 1x1 ``Conv`` (so the layout stays NCHW).
Flatten and Reshape need Keras's channels-last order, so an NCHW tensor is transposed back first.

Example:
    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import Dense, Reshape
    >>> from edgemine.onnx import to_onnx
    >>> m = Sequential([Dense(6, input_shape=(4,)), Reshape((2, 3)), Dense(2)])
    >>> [n.op_type for n in to_onnx(m).graph.node]
    ['Gemm', 'Reshape', 'MatMul', 'Add']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import converter


@converter("Dense")
def convert_dense(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Dense: Gemm (rank 2), 1x1 Conv (NCHW image) or MatMul + Add (other ranks)."""
    kernel, bias = params["kernel"], params.get("bias")
    name = layer.name
    layout = ctx.layout
    if len(ctx.shape) == 1:
        inputs = [ctx.tensor, ctx.const(kernel, f"{name}/kernel")]
        if bias is not None:
            inputs.append(ctx.const(bias, f"{name}/bias"))
        y = ctx.op("Gemm", inputs, name)
    elif layout == "NCHW":
        w = kernel.T.reshape(kernel.shape[1], kernel.shape[0], 1, 1)
        inputs = [ctx.tensor, ctx.const(w, f"{name}/kernel")]
        if bias is not None:
            inputs.append(ctx.const(bias, f"{name}/bias"))
        y = ctx.op("Conv", inputs, name, kernel_shape=[1, 1])
    else:
        y = ctx.op("MatMul", [ctx.tensor, ctx.const(kernel, f"{name}/kernel")], name)
        if bias is not None:
            y = ctx.op("Add", [y, ctx.const(bias, f"{name}/bias")], name)
    ctx.set(y, layer.output_shape, layout)
    ctx.tensor = ctx.activation(y, layer.activation, name, layer)


@converter("Activation")
def convert_activation(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Activation: Relu / Sigmoid / Tanh / Softmax(channel axis), in the current layout."""
    ctx.tensor = ctx.activation(ctx.tensor, layer.activation, layer.name, layer)


@converter("Flatten")
def convert_flatten(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Flatten: back to channels-last (H, W, C order for the next Dense), then Flatten(axis=1)."""
    if len(ctx.shape) == 1:
        return
    x = ctx.keras_layout(layer.name)
    ctx.set(ctx.op("Flatten", [x], layer.name, axis=1), layer.output_shape)


@converter("Reshape")
def convert_reshape(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Reshape to (batch, *target_shape) in channels-last order."""
    x = ctx.keras_layout(layer.name)
    shape = ctx.const(np.array([0, *layer.output_shape], np.int64), f"{layer.name}/shape")
    ctx.set(ctx.op("Reshape", [x, shape], layer.name), layer.output_shape)
