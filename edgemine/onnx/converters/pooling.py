"""Max / average pooling, local and global.

Local pooling runs in NCHW (``MaxPool`` / ``AveragePool`` with explicit pads; 'same' average
pooling divides by the in-bounds cells: ``count_include_pad=0``, as TensorFlow does). Global
pooling keeps NCHW tensors in NCHW (``GlobalAveragePool`` + ``Flatten``) and reduces NHWC ones
directly over axes 1, 2 (no Transpose): ``ReduceMean``'s axes are an attribute up to opset 17
and an input from opset 18, hence two converters.

Example:
    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import GlobalAveragePooling2D
    >>> from edgemine.onnx import to_onnx
    >>> m = Sequential([GlobalAveragePooling2D(input_shape=(4, 4, 3))])
    >>> [(n.op_type, len(n.input)) for n in to_onnx(m, opset=17).graph.node]
    [('ReduceMean', 1)]
    >>> [(n.op_type, len(n.input)) for n in to_onnx(m, opset=18).graph.node]
    [('ReduceMean', 2)]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import converter
from .conv import same_pads


@converter("MaxPooling2D", "AveragePooling2D")
def convert_pool2d(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """MaxPooling2D -> MaxPool, AveragePooling2D -> AveragePool(count_include_pad=0)."""
    x = ctx.nchw(layer.name)
    attrs = {
        "kernel_shape": list(layer.pool_size),
        "strides": list(layer.strides),
        "pads": same_pads(ctx.shape[:2], layer.pool_size, layer.strides, layer.padding),
    }
    if type(layer).__name__ == "MaxPooling2D":
        y = ctx.op("MaxPool", [x], layer.name, **attrs)
    else:
        y = ctx.op("AveragePool", [x], layer.name, count_include_pad=0, **attrs)
    ctx.set(y, layer.output_shape, "NCHW")


def _reduce_op(layer: Any) -> str:
    return "ReduceMax" if type(layer).__name__ == "GlobalMaxPooling2D" else "ReduceMean"


def _global_nchw(ctx: Any, layer: Any) -> bool:
    if ctx.layout != "NCHW":
        return False
    op = "GlobalMaxPool" if type(layer).__name__ == "GlobalMaxPooling2D" else "GlobalAveragePool"
    y = ctx.op(op, [ctx.tensor], layer.name)
    ctx.set(ctx.op("Flatten", [y], layer.name, axis=1), layer.output_shape)
    return True


@converter("GlobalAveragePooling2D", "GlobalMaxPooling2D", until=17)
def convert_global_pool_axes_attr(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Global pooling, opsets 13-17 (reduce axes as an attribute)."""
    if not _global_nchw(ctx, layer):
        y = ctx.op(_reduce_op(layer), [ctx.tensor], layer.name, axes=[1, 2], keepdims=0)
        ctx.set(y, layer.output_shape)


@converter("GlobalAveragePooling2D", "GlobalMaxPooling2D", since=18)
def convert_global_pool_axes_input(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Global pooling, opset 18 on (reduce axes as an input)."""
    if not _global_nchw(ctx, layer):
        axes = ctx.const(np.array([1, 2], np.int64), "axes_1_2")
        y = ctx.op(_reduce_op(layer), [ctx.tensor, axes], layer.name, keepdims=0)
        ctx.set(y, layer.output_shape)
