"""Pooling and upsampling over (steps, channels) sequences.

Local and global pooling run the 2-D pooling ops on a (batch, 1, steps, channels) view (a
reshape, no copy), so they share those kernels and their padding rules: 'same' average pooling
averages the in-bounds steps only, as Keras.
"""

from __future__ import annotations

from .base import Layer, normalize_tuple, register
from .conv1d import _check_sequence, _padding, _positive_int


class _Pooling1D(Layer):
    mode = "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kw):
        super().__init__(**kw)
        kind = type(self).__name__
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{kind} supports data_format='channels_last' (steps, channels) only")
        (self.pool_size,) = normalize_tuple(pool_size, 1, f"{kind} pool_size")
        self.strides = (
            self.pool_size if strides is None else normalize_tuple(strides, 1, f"{kind} strides")[0]
        )
        self.padding = _padding(padding, ("valid", "same"), kind)

    def compute_output_shape(self, input_shape):
        steps, c = _check_sequence(self, input_shape)
        if steps is None:
            return (None, c)
        out, _ = self.ops.conv_output_size(steps, self.pool_size, self.strides, self.padding)
        if out < 1:
            raise ValueError(
                f"{self.name}: input of {steps} steps is shorter than pool_size "
                f"{self.pool_size} under padding='valid'"
            )
        return (out, c)

    def _geometry(self):
        return (1, self.pool_size), (1, self.strides), self.padding

    def forward(self, x, training=False):
        n, steps, c = x.shape
        if self.input_shape[0] is None:  # any length: this batch's must fit the window
            self.compute_output_shape((steps, c))
        y, self._arg = self.ops.pool2d_forward(
            self.mode, self.ops.reshape(x, (n, 1, steps, c)), *self._geometry()
        )
        self._x_shape = (n, 1, steps, c)
        self._y = y
        return self.ops.reshape(y, (n, y.shape[2], c))

    def backward(self, dy, relu_y=None):
        n, out, c = dy.shape
        dx = self.ops.pool2d_backward(
            self.mode,
            self._x_shape,
            self._arg,
            self.ops.reshape(dy, (n, 1, out, c)),
            *self._geometry(),
            relu_y=relu_y,
        )
        return self.ops.reshape(dx, self._x_shape[:1] + self._x_shape[2:])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": [self.pool_size],
            "strides": [self.strides],
            "padding": self.padding,
        }


@register
class MaxPooling1D(_Pooling1D):
    """Max over windows of ``pool_size`` steps (strides default to pool_size).

    >>> MaxPooling1D(2).compute_output_shape((7, 3)), MaxPooling1D(2, padding="same").compute_output_shape((7, 3))
    ((3, 3), (4, 3))
    """

    mode = "max"
    #: as MaxPooling2D: a ReLU's backward below is applied to the (smaller) pooled gradient
    absorbs_activation_below = frozenset({"relu"})

    def backward_through_activation(self, activation, dy):
        """The gradient of this pooling's input AND of the ReLU that produced it."""
        if activation not in self.absorbs_activation_below:
            raise ValueError(f"{self.name}: cannot absorb the backward of {activation!r}")
        return self.backward(dy, relu_y=self._y)


@register
class AveragePooling1D(_Pooling1D):
    """Mean over windows of ``pool_size`` steps; 'same' padding averages in-bounds steps only.

    >>> AveragePooling1D(3, strides=1, padding="same").compute_output_shape((5, 2))
    (5, 2)
    """

    mode = "avg"


class _GlobalPooling1D(Layer):
    mode = "avg"

    def __init__(self, data_format=None, keepdims: bool = False, **kw):
        super().__init__(**kw)
        kind = type(self).__name__
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{kind} supports data_format='channels_last' (steps, channels) only")
        if not isinstance(keepdims, bool):
            raise TypeError(f"{kind} keepdims must be True or False, got {keepdims!r}")
        self.keepdims = keepdims

    def compute_output_shape(self, input_shape):
        _, c = _check_sequence(self, input_shape)
        return (1, c) if self.keepdims else (c,)

    def _pooled(self, y):
        return self.ops.reshape(y, (y.shape[0], 1, y.shape[1])) if self.keepdims else y

    def forward(self, x, training=False):
        n, steps, c = x.shape
        self._x_shape = (n, 1, steps, c)
        y, self._cache = self.ops.global_pool_forward(self.mode, self.ops.reshape(x, self._x_shape))
        return self._pooled(y)

    def backward(self, dy):
        n, c = dy.shape[0], dy.shape[-1]
        dx = self.ops.global_pool_backward(
            self.mode, self._x_shape, self._cache, self.ops.reshape(dy, (n, c))
        )
        return self.ops.reshape(dx, self._x_shape[:1] + self._x_shape[2:])

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


@register
class GlobalAveragePooling1D(_GlobalPooling1D):
    """Mean over the steps: (steps, c) -> (c,), or (1, c) with ``keepdims``. With a Keras mask
    (``Embedding(mask_zero=True)`` below), the mean of the unmasked steps only.

    >>> import numpy as np
    >>> x = np.arange(10.0).reshape(1, 5, 2)
    >>> GlobalAveragePooling1D()(x, mask=[[True, True, False, False, False]]).tolist()
    [[1.0, 2.0]]
    """

    mode = "avg"
    supports_masking = True

    def forward(self, x, training=False, mask=None):
        if mask is None:
            self._masked = False
            return super().forward(x, training)
        if tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(
                f"{self.name}: the mask must be (batch, steps) = {tuple(x.shape[:2])}, "
                f"got {tuple(mask.shape)}"
            )
        self._masked = True
        y, self._cache = self.ops.masked_mean_forward(x, mask)
        return self._pooled(y)

    def backward(self, dy):
        if not self._masked:
            return super().backward(dy)
        n, c = dy.shape[0], dy.shape[-1]
        return self.ops.masked_mean_backward(self._cache, self.ops.reshape(dy, (n, c)))

    def compute_mask(self, inputs, mask):
        return None


@register
class GlobalMaxPooling1D(_GlobalPooling1D):
    """Max over the steps: (steps, c) -> (c,), or (1, c) with ``keepdims``.

    >>> GlobalMaxPooling1D(keepdims=True).compute_output_shape((9, 4))
    (1, 4)
    """

    mode = "max"


@register
class UpSampling1D(Layer):
    """Repeat each step ``size`` times: (steps, c) -> (steps * size, c).

    >>> import numpy as np
    >>> UpSampling1D(2)(np.array([[[1.0], [2.0]]]))[0, :, 0].tolist()
    [1.0, 1.0, 2.0, 2.0]
    """

    def __init__(self, size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.size = _positive_int(size, "size", "UpSampling1D")

    def compute_output_shape(self, input_shape):
        steps, c = _check_sequence(self, input_shape)
        return (None if steps is None else steps * self.size, c)

    def forward(self, x, training=False):
        return self.ops.upsample1d_forward(x, self.size)

    def backward(self, dy):
        return self.ops.upsample1d_backward(dy, self.size)

    def get_config(self):
        return {**super().get_config(), "size": self.size}
