"""BatchNormalization that could not be folded into a preceding Conv2D / Dense (see
``export.plan``): ``x * scale + shift`` with per-channel constants, shaped for the current
layout (``(c, 1, 1)`` in NCHW, ``(c,)`` for channels-last tensors) so no Transpose is needed.

Example:
    >>> from edgemine.models import Sequential
    >>> from edgemine.layers import BatchNormalization, Dense
    >>> from edgemine.onnx import to_onnx
    >>> m = Sequential([Dense(3, activation="relu", input_shape=(2,)), BatchNormalization()])
    >>> [n.op_type for n in to_onnx(m).graph.node]
    ['Gemm', 'Relu', 'Mul', 'Add']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import converter


@converter("BatchNormalization")
def convert_batchnorm(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Standalone BatchNormalization at inference: Mul + Add."""
    from ..passes import bn_scale_shift

    scale, shift = bn_scale_shift(layer, params)
    if ctx.layout == "NCHW":
        scale, shift = scale.reshape(-1, 1, 1), shift.reshape(-1, 1, 1)
    elif ctx.layout == "BCT":
        scale, shift = scale.reshape(-1, 1), shift.reshape(-1, 1)
    y = ctx.op("Mul", [ctx.tensor, ctx.const(scale, f"{layer.name}/scale")], layer.name)
    y = ctx.op("Add", [y, ctx.const(shift, f"{layer.name}/shift")], layer.name)
    ctx.set(y, layer.output_shape, ctx.layout)
