"""Keras's activation layers with arguments: ReLU, LeakyReLU and Softmax.

They pass a Keras mask on unchanged (Keras: ``supports_masking``). ReLU and LeakyReLU keep their
input for the backward pass: a clipped or thresholded output does not say which branch a value
took.
"""

from __future__ import annotations

import math
import numbers
import warnings

from .base import Layer, register


def _non_negative(value, what: str, layer: str, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
        raise ValueError(f"{layer} {what} must be a finite number >= 0, got {value!r}")
    return float(value)


class _ReLUBase(Layer):
    passes_mask = True
    negative_slope: float = 0.0
    max_value: float | None = None
    threshold: float = 0.0

    def _args(self) -> dict:
        return {
            "negative_slope": self.negative_slope,
            "max_value": self.max_value,
            "threshold": self.threshold,
        }

    def forward(self, x, training=False):
        self._x = x
        return self.ops.relu_forward(x, **self._args())

    def backward(self, dy):
        return self.ops.relu_backward(self._x, dy, **self._args())


@register
class ReLU(_ReLUBase):
    """Keras's ReLU layer: ``min(x, max_value)`` above ``threshold``, else
    ``negative_slope * (x - threshold)``.

    >>> import numpy as np
    >>> ReLU(max_value=10, negative_slope=0.5)(np.array([[-10, -5, 0.0, 5, 10]])).tolist()
    [[-5.0, -2.5, 0.0, 5.0, 10.0]]
    """

    def __init__(
        self,
        max_value: float | None = None,
        negative_slope: float = 0.0,
        threshold: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_value = _non_negative(max_value, "max_value", "ReLU", allow_none=True)
        self.negative_slope = _non_negative(negative_slope, "negative_slope", "ReLU")
        self.threshold = _non_negative(threshold, "threshold", "ReLU")

    def get_config(self):
        return {**super().get_config(), **self._args()}


@register
class LeakyReLU(_ReLUBase):
    """Keras's LeakyReLU: ``x`` for x >= 0, ``negative_slope * x`` below (Keras 3's default
    0.3; Keras 2's ``alpha=`` is accepted with a warning, as Keras 3 does).

    >>> import numpy as np
    >>> LeakyReLU(negative_slope=0.5)(np.array([[-10, -5, 0.0, 5, 10]])).tolist()
    [[-5.0, -2.5, 0.0, 5.0, 10.0]]
    """

    def __init__(self, negative_slope: float = 0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn(
                "LeakyReLU: argument `alpha` is deprecated, use `negative_slope`",
                DeprecationWarning,
                stacklevel=2,
            )
        super().__init__(**kwargs)
        self.negative_slope = _non_negative(negative_slope, "negative_slope", "LeakyReLU")

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@register
class Softmax(Layer):
    """Keras's Softmax layer over ``axis`` (an int, or a list of adjacent axes), counted with
    the batch axis as Keras does (-1: the last axis).

    >>> import numpy as np
    >>> Softmax()(np.array([[1.0, 2.0, 1.0]])).round(4).tolist()
    [[0.2119, 0.5761, 0.2119]]
    """

    passes_mask = True

    def __init__(self, axis: int | list[int] = -1, **kwargs):
        super().__init__(**kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
            raise TypeError(f"Softmax axis must be an int or a list of ints, got {axis!r}")
        self.axis = axis if isinstance(axis, int) else list(axis)
        self._axes = axes

    def _positive_axes(self, rank: int) -> tuple:
        """The axes counted from the batch axis (``rank`` includes it)."""
        axes = sorted(a + rank if a < 0 else a for a in self._axes)
        if any(not 1 <= a < rank for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(
                f"{self.name}: Softmax axis {self.axis!r} is not a non-batch axis of an input "
                f"of rank {rank}"
            )
        if axes != list(range(axes[0], axes[-1] + 1)):
            raise ValueError(f"{self.name}: Softmax axes {self.axis!r} must be adjacent")
        return tuple(axes)

    def compute_output_shape(self, input_shape):
        self._positive_axes(len(input_shape) + 1)
        return tuple(input_shape)

    def forward(self, x, training=False):
        self._axes_now = self._positive_axes(len(x.shape))
        self._y = self.ops.softmax_forward(x, self._axes_now)
        return self._y

    def backward(self, dy):
        return self.ops.softmax_backward(self._y, dy, self._axes_now)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
