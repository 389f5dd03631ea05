"""Max / average pooling, local and global, over NHWC images."""

from __future__ import annotations

from .base import Layer, check_padding, normalize_tuple, register


class _Pooling2D(Layer):
    mode = "max"

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kw):
        super().__init__(**kw)
        if data_format not in (None, "channels_last"):
            raise ValueError("pooling supports data_format='channels_last' (NHWC) only")
        self.pool_size = normalize_tuple(pool_size, 2, "pool_size")
        self.strides = self.pool_size if strides is None else normalize_tuple(strides, 2, "strides")
        self.padding = check_padding(padding)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expects (height, width, channels), got {input_shape}")
        h, w, c = input_shape
        oh, _ = self.ops.conv_output_size(h, self.pool_size[0], self.strides[0], self.padding)
        ow, _ = self.ops.conv_output_size(w, self.pool_size[1], self.strides[1], self.padding)
        if oh < 1 or ow < 1:
            raise ValueError(f"{self.name}: input {input_shape} is smaller than {self.pool_size}")
        return (oh, ow, c)

    def input_corner_read(self, input_shape):
        """'valid' windows stop where the last whole window ends: the rows and columns after it
        are never read (a 2x2 pooling of an 11x11 input reads 10x10).

        >>> MaxPooling2D(2).input_corner_read((11, 11, 8)), MaxPooling2D(2).input_corner_read((10, 10, 8))
        ((10, 10), None)
        """
        if self.padding != "valid":
            return None
        h, w, _ = input_shape
        (ph, pw), (sh, sw) = self.pool_size, self.strides
        rows, cols = (h - ph) // sh * sh + ph, (w - pw) // sw * sw + pw
        return None if (rows, cols) == (h, w) else (rows, cols)

    def forward(self, x, training=False):
        y, self._arg = self.ops.pool2d_forward(
            self.mode, x, self.pool_size, self.strides, self.padding
        )
        self._x_shape = x.shape
        self._y = y
        return y

    def backward(self, dy):
        return self.ops.pool2d_backward(
            self.mode, self._x_shape, self._arg, dy, self.pool_size, self.strides, self.padding
        )

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


@register
class MaxPooling2D(_Pooling2D):
    """Max over each pool window (default 2x2, strides = pool_size)."""

    mode = "max"

    #: the ReLU's derivative at a window's winner is (pooled value > 0) and the other cells get
    #: no gradient, so masking the pooled gradient (a quarter of the size, for 2x2 windows)
    #: equals masking the input gradient (measured: saves a full-size pass per pair, 0.2-0.3 ms
    #: of the seed CNN's 9-10 ms training step)
    absorbs_activation_below = frozenset({"relu"})
    #: ... and in the forward pass it can add the convolution's bias and apply its ReLU after
    #: the max (max(z + b) = max(z) + b per channel, and max commutes with ReLU): one pass over
    #: the pooled output instead of one over the convolution's (``Graph.deferring``)
    applies_bias_activation_below = frozenset({"relu"})

    def forward_after(self, x, below, training=False):
        """This pooling of ``below.forward_raw``'s output, then ``below``'s bias and activation."""
        y = self.forward(x, training)
        bias = below.bias.value if below.bias is not None else None
        self._y = self.ops.bias_activation(y, bias, below.activation)
        return self._y

    def backward_through_activation(self, activation, dy):
        """The gradient of this pooling's input AND of the ReLU that produced it."""
        if activation not in self.absorbs_activation_below:
            raise ValueError(f"{self.name}: cannot absorb the backward of {activation!r}")
        return self.ops.pool2d_backward(
            self.mode,
            self._x_shape,
            self._arg,
            dy,
            self.pool_size,
            self.strides,
            self.padding,
            relu_y=self._y,
        )


@register
class AveragePooling2D(_Pooling2D):
    """Mean over each pool window; 'same' padding averages the in-bounds cells only."""

    mode = "avg"


class _GlobalPooling2D(Layer):
    mode = "avg"

    def __init__(self, data_format=None, keepdims: bool = False, **kw):
        super().__init__(**kw)
        if data_format not in (None, "channels_last"):
            raise ValueError("pooling supports data_format='channels_last' (NHWC) only")
        if keepdims:
            raise ValueError(f"{type(self).__name__}: keepdims=True is not supported")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.name}: expects (height, width, channels), got {input_shape}")
        return (input_shape[-1],)

    def forward(self, x, training=False):
        y, self._cache = self.ops.global_pool_forward(self.mode, x)
        self._x_shape = x.shape
        return y

    def backward(self, dy):
        return self.ops.global_pool_backward(self.mode, self._x_shape, self._cache, dy)


@register
class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over height and width: (h, w, c) -> (c,)."""

    mode = "avg"


@register
class GlobalMaxPooling2D(_GlobalPooling2D):
    """Max over height and width: (h, w, c) -> (c,)."""

    mode = "max"
