"""Merge layers: Add -> Sum, Average -> Mean, Maximum -> Max, Minimum -> Min (variadic),
Multiply -> Mul and Subtract -> Sub (pairwise), Concatenate -> Concat. Inputs in one layout stay
in it (two NCHW feature maps add as NCHW); mixed layouts meet in Keras's order. A Keras mask
is the AND of the inputs' masks.

Example:
    >>> from edgemine.layers import Add, Dense, Input
    >>> from edgemine.models import Model
    >>> from edgemine.onnx import to_onnx
    >>> x = Input(shape=(3,))
    >>> [n.op_type for n in to_onnx(Model(x, Add()([Dense(3)(x), x]))).graph.node]
    ['Gemm', 'Sum']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import converter

_VARIADIC = {"Add": "Sum", "Average": "Mean", "Maximum": "Max", "Minimum": "Min"}
_PAIRWISE = {"Multiply": "Mul", "Subtract": "Sub"}


def _inputs_in_one_layout(ctx: Any, layer: Any, keep_nchw: bool) -> tuple[list[str], Any]:
    """The input tensors in a common layout, and that layout."""
    layouts = {rec[2] for rec in ctx.inputs}
    if len(layouts) == 1 and (keep_nchw or layouts != {"NCHW"}):
        return [rec[0] for rec in ctx.inputs], layouts.pop()
    tensors = []
    for rec in ctx.inputs:
        ctx.tensor, ctx.shape, ctx.layout, _ = rec
        tensors.append(ctx.keras_layout(layer.name))
    return tensors, ctx.layout


def _mask(ctx: Any, layer: Any) -> Any:
    masks = [rec[3] for rec in ctx.inputs if rec[3] is not None]
    out = masks[0] if masks else None
    for m in masks[1:]:
        out = ctx.op("And", [out, m], f"{layer.name}/mask")
    return out


@converter(*_VARIADIC, *_PAIRWISE)
def convert_elementwise_merge(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Add / Average / Maximum / Minimum as one variadic node; Multiply / Subtract pairwise."""
    kind = type(layer).__name__
    tensors, layout = _inputs_in_one_layout(ctx, layer, keep_nchw=True)
    if kind in _VARIADIC:
        y = ctx.op(_VARIADIC[kind], tensors, layer.name)
    else:
        y = tensors[0]
        for t in tensors[1:]:
            y = ctx.op(_PAIRWISE[kind], [y, t], layer.name)
    ctx.set(y, layer.output_shape, layout)
    ctx.mask = _mask(ctx, layer)


@converter("Concatenate")
def convert_concatenate(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Concat along Keras's axis; NCHW maps joined along their channels stay NCHW."""
    rank = len(layer.output_shape) + 1
    axis = layer.axis % rank
    channels = rank == 4 and axis == 3
    tensors, layout = _inputs_in_one_layout(ctx, layer, keep_nchw=channels)
    onnx_axis = 1 if layout == "NCHW" else axis
    if layout == "TBF":  # [T, B, F]: Keras's axis 1 (time) is 0, axis 2 stays
        onnx_axis = {1: 0, 2: 2}[axis]
    y = ctx.op("Concat", tensors, layer.name, axis=onnx_axis)
    ctx.set(y, layer.output_shape, layout)
    ctx.mask = _mask(ctx, layer)
