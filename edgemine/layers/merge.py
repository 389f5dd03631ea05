"""Merge layers of the functional API: Add, Subtract, Multiply, Average, Maximum, Minimum and
Concatenate. Each takes a list of tensors (Subtract exactly two) of equal shapes (Concatenate:
equal except along ``axis``) and folds them pairwise with the backend's ``merge_forward``.

A Keras mask passes through: the output mask is the AND of the inputs' masks (an input without
a mask counts as all True), as in Keras.

>>> import numpy as np
>>> from edgemine.layers import Input
>>> from edgemine.models import Model
>>> a, b = Input(shape=(2,)), Input(shape=(3,))
>>> model = Model([a, b], Concatenate()([a, b]))
>>> model.predict([np.ones((1, 2)), np.zeros((1, 3))]).tolist()
[[1.0, 1.0, 0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import math

from .base import Layer, register


class _Merge(Layer):
    """Folds its inputs pairwise with one backend merge mode (``_mode``)."""

    multi_input = True
    supports_masking = True
    _mode = ""
    #: the fewest and most inputs (None: no upper bound)
    _arity: tuple[int, int | None] = (2, None)

    def build(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        lo, hi = self._arity
        if len(shapes) < lo or (hi is not None and len(shapes) > hi):
            want = f"exactly {lo}" if lo == hi else f"at least {lo}"
            raise ValueError(
                f"{self.name}: {type(self).__name__} takes {want} inputs, got {len(shapes)}"
            )
        self.input_shape = shapes
        self.output_shape = tuple(self.compute_output_shape(shapes))
        self.built = True

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(
                f"{self.name}: {type(self).__name__} needs inputs of one shape, got {shapes}"
            )
        return shapes[0]

    def forward(self, x, training=False, mask=None):
        xs = list(x)
        self._partials = [xs[0]]  # what each pairwise step saw as its left operand
        self._xs = xs
        out = xs[0]
        for other in xs[1:]:
            out = self.ops.merge_forward(self._mode, out, other)
            self._partials.append(out)
        return out

    def backward(self, dy):
        dxs = [None] * len(self._xs)
        d = dy
        for k in range(len(self._xs) - 1, 0, -1):
            d, dxs[k] = self.ops.merge_backward(self._mode, self._partials[k - 1], self._xs[k], d)
        dxs[0] = d
        return dxs

    def compute_mask(self, inputs, mask):
        masks = [m for m in (mask or []) if m is not None]
        if not masks:
            return None
        out = masks[0]
        for m in masks[1:]:
            out = out & m
        return out


@register
class Add(_Merge):
    """The sum of its inputs: ``Add()([a, b, c])``."""

    _mode = "sum"


@register
class Subtract(_Merge):
    """The difference of two inputs: ``Subtract()([a, b])`` is ``a - b``."""

    _mode = "sub"
    _arity = (2, 2)


@register
class Multiply(_Merge):
    """The element-wise product of its inputs."""

    _mode = "mul"


@register
class Maximum(_Merge):
    """The element-wise maximum of its inputs (a tie's gradient goes to the first)."""

    _mode = "max"


@register
class Minimum(_Merge):
    """The element-wise minimum of its inputs (a tie's gradient goes to the first)."""

    _mode = "min"


@register
class Average(_Merge):
    """The mean of its inputs."""

    _mode = "sum"

    def forward(self, x, training=False, mask=None):
        xs = list(x)
        if len(xs) == 2:  # one fused kernel
            self._xs = xs
            return self.ops.merge_forward("ave", xs[0], xs[1])
        out = super().forward(xs, training)
        self.ops.scale_(out, 1.0 / len(xs))  # ``out`` is a fresh sum array here
        return out

    def backward(self, dy):
        if len(self._xs) == 2:
            return list(self.ops.merge_backward("ave", self._xs[0], self._xs[1], dy))
        scaled = self.ops.add(dy, self.ops.zeros_like(dy))
        self.ops.scale_(scaled, 1.0 / len(self._xs))
        return [scaled] * len(self._xs)


@register
class Concatenate(_Merge):
    """Joins its inputs along ``axis`` (default the last, as in Keras; the batch axis is 0)."""

    _mode = "concat"

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int) or axis == 0:
            raise ValueError(
                f"Concatenate axis must be a non-zero int (0 is the batch), got {axis!r}"
            )
        self.axis = axis

    def _axis(self, rank: int) -> int:
        """The axis as an index into a per-sample shape of ``rank`` axes."""
        axis = self.axis + rank + 1 if self.axis < 0 else self.axis
        if not 1 <= axis <= rank:
            raise ValueError(
                f"{self.name}: axis {self.axis} is out of range for rank {rank} inputs"
            )
        return axis - 1

    def compute_output_shape(self, input_shape):
        shapes = [tuple(s) for s in input_shape]
        rank = len(shapes[0])
        k = self._axis(rank)
        if any(
            len(s) != rank or s[:k] + s[k + 1 :] != shapes[0][:k] + shapes[0][k + 1 :]
            for s in shapes
        ):
            raise ValueError(
                f"{self.name}: Concatenate needs equal shapes except along axis {self.axis}, got {shapes}"
            )
        if any(s[k] is None for s in shapes):
            return (*shapes[0][:k], None, *shapes[0][k + 1 :])
        return (*shapes[0][:k], sum(s[k] for s in shapes), *shapes[0][k + 1 :])

    def _flat(self, x):
        """``x`` as (leading, trailing) rows: concatenation along the axis becomes
        concatenation of the rows' last axis."""
        k = self._axis(len(x.shape) - 1) + 1
        return self.ops.reshape(x, (math.prod(x.shape[:k]), math.prod(x.shape[k:])))

    def forward(self, x, training=False, mask=None):
        xs = list(x)
        self._shapes = [tuple(a.shape) for a in xs]
        flat = super().forward([self._flat(a) for a in xs], training)
        k = self._axis(len(xs[0].shape) - 1) + 1
        total = sum(s[k] for s in self._shapes)
        return self.ops.reshape(flat, (*self._shapes[0][:k], total, *self._shapes[0][k + 1 :]))

    def backward(self, dy):
        dxs = super().backward(self._flat(dy))
        return [self.ops.reshape(d, s) for d, s in zip(dxs, self._shapes)]

    def compute_mask(self, inputs, mask):
        if self.axis in (-1, len(self.output_shape)):  # features joined: steps unchanged
            return super().compute_mask(inputs, mask)
        if mask is not None and any(m is not None for m in mask):
            raise ValueError(f"{self.name}: Concatenate of masked sequences along the time axis")
        return None

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _functional(cls):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)

    merge.__name__ = cls.__name__.lower()
    merge.__doc__ = (
        f"Keras's functional form: ``{merge.__name__}(inputs)`` is ``{cls.__name__}()(inputs)``."
    )
    return merge


add = _functional(Add)
subtract = _functional(Subtract)
multiply = _functional(Multiply)
average = _functional(Average)
maximum = _functional(Maximum)
minimum = _functional(Minimum)
concatenate = _functional(Concatenate)
