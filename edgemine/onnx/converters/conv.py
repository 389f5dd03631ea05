"""Conv2D -> ONNX Conv (NCHW, OIHW kernel, explicit TensorFlow-style 'same' pads).

Example:
    >>> same_pads((28, 28), (3, 3), (2, 2), "same")
    [0, 0, 1, 1]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...kernels._shared import conv_output_size
from . import converter


def same_pads(hw: tuple, kernel: tuple, strides: tuple, padding: str) -> list[int]:
    """ONNX ``pads`` [top, left, bottom, right] for Keras's 'valid' / 'same' (extra at the end)."""
    begins, ends = [], []
    for size, k, s in zip(hw, kernel, strides):
        out, before = conv_output_size(size, k, s, padding)
        total = max((out - 1) * s + k - size, 0) if padding == "same" else 0
        begins.append(before)
        ends.append(total - before)
    return begins + ends


@converter("Conv2D")
def convert_conv2d(ctx: Any, layer: Any, params: dict[str, np.ndarray]) -> None:
    """Conv2D: kernel (kh, kw, cin, cout) -> (cout, cin, kh, kw); fused activation after it."""
    x = ctx.nchw(layer.name)
    w = ctx.const(params["kernel"].transpose(3, 2, 0, 1), f"{layer.name}/kernel")
    inputs = [x, w]
    if params.get("bias") is not None:
        inputs.append(ctx.const(params["bias"], f"{layer.name}/bias"))
    y = ctx.op(
        "Conv",
        inputs,
        layer.name,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.strides),
        pads=same_pads(ctx.shape[:2], layer.kernel_size, layer.strides, layer.padding),
    )
    ctx.set(y, layer.output_shape, "NCHW")
    ctx.tensor = ctx.activation(y, layer.activation, layer.name, layer)
