"""Conv1D and Conv1DTranspose over (steps, channels) sequences, with Keras's kernel layouts:
(kernel_size, in_channels, filters) and, transposed, (kernel_size, filters, in_channels)."""

from __future__ import annotations

from .. import initializers
from .base import KernelBiasMixin, Layer, normalize_tuple, register


def _positive_int(value, what: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{layer} {what} must be a positive int, got {value!r}")
    return value


def _padding(value, allowed: tuple[str, ...], layer: str) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        names = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{layer} padding must be one of {names}, got {value!r}")
    return value.lower()


def _check_sequence(layer: Layer, input_shape: tuple) -> tuple:
    if len(input_shape) != 2:
        raise ValueError(
            f"{layer.name}: {type(layer).__name__} expects (steps, channels) inputs, "
            f"got {input_shape}"
        )
    return input_shape


class _Conv1DBase(KernelBiasMixin, Layer):
    """What Conv1D and Conv1DTranspose share: arguments, weights, config."""

    paddings: tuple[str, ...] = ("valid", "same")

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=1,
        padding: str = "valid",
        dilation_rate=1,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        data_format: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{kind} supports data_format='channels_last' (steps, channels) only")
        self.filters = _positive_int(filters, "filters", kind)
        (self.kernel_size,) = normalize_tuple(kernel_size, 1, f"{kind} kernel_size")
        (self.strides,) = normalize_tuple(strides, 1, f"{kind} strides")
        (self.dilation_rate,) = normalize_tuple(dilation_rate, 1, f"{kind} dilation_rate")
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                f"{kind}: strides > 1 is not supported together with dilation_rate > 1 (as in "
                f"Keras), got strides={self.strides} and dilation_rate={self.dilation_rate}"
            )
        self.padding = _padding(padding, self.paddings, kind)
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.serialize(kernel_initializer)
        self.bias_initializer = initializers.serialize(bias_initializer)

    def _kernel_shape(self, channels: int) -> tuple:
        raise NotImplementedError  # abstract

    @property
    def _window(self) -> tuple:
        """(stride, padding, dilation): the backend ops' window arguments."""
        return self.strides, self.padding, self.dilation_rate

    def build(self, input_shape):
        _check_sequence(self, input_shape)
        self.kernel = self.add_weight(
            "kernel", self._kernel_shape(input_shape[-1]), self.kernel_initializer
        )
        self.bias = (
            self.add_weight("bias", (self.filters,), self.bias_initializer)
            if self.use_bias
            else None
        )
        super().build(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": [self.kernel_size],
            "strides": [self.strides],
            "padding": self.padding,
            "dilation_rate": [self.dilation_rate],
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }


@register
class Conv1D(_Conv1DBase):
    """1-D convolution over (steps, channels): ``padding`` 'valid', 'same' or 'causal' (output
    step t sees input steps up to t only), ``dilation_rate`` taps apart.

    >>> Conv1D(8, 3, padding="causal", dilation_rate=2).compute_output_shape((100, 6))
    (100, 8)
    >>> Conv1D(8, 5, strides=2).compute_output_shape((100, 6))
    (48, 8)
    """

    paddings = ("valid", "same", "causal")

    def _kernel_shape(self, channels):
        return (self.kernel_size, channels, self.filters)

    def compute_output_shape(self, input_shape):
        steps, _ = _check_sequence(self, input_shape)
        if steps is None:
            return (None, self.filters)
        out, _, _ = self.ops.conv1d_geometry(
            steps, self.kernel_size, self.strides, self.dilation_rate, self.padding
        )
        if out < 1:
            span = self.dilation_rate * (self.kernel_size - 1) + 1
            raise ValueError(
                f"{self.name}: input of {steps} steps is shorter than the kernel's span "
                f"({span} steps) under padding='valid'"
            )
        return (out, self.filters)

    def _forward(self, x, training, activation):
        if self.input_shape[0] is None:  # any length: this batch's must fit the kernel
            self.compute_output_shape(tuple(x.shape[1:]))
        self._y, cols = self.ops.conv1d_forward(
            x,
            self.kernel.value,
            self.bias.value if self.bias else None,
            *self._window,
            activation,
            keep=training,
        )
        self._x_shape = x.shape
        self._cols = cols if training else None
        return self._y

    def _backward_op(self, dy, activation, out):
        return self.ops.conv1d_backward(
            self._x_shape,
            self._cols,
            self.kernel.value,
            dy,
            *self._window,
            self.need_input_grad,
            activation=activation,
            y=self._y,
            out=out,
        )

    def flops(self):
        steps, f = self.output_shape
        return 2 * steps * f * self.kernel_size * self.input_shape[-1]


@register
class Conv1DTranspose(_Conv1DBase):
    """Transposed 1-D convolution (the adjoint of Conv1D), kernel (kernel_size, filters,
    in_channels) as Keras; output length ``steps * strides`` ('same') or
    ``steps * strides + max(span - strides, 0)`` ('valid'), Keras's rule.

    >>> Conv1DTranspose(4, 3, strides=2).compute_output_shape((10, 6))
    (21, 4)
    >>> Conv1DTranspose(4, 3, strides=2, padding="same").compute_output_shape((10, 6))
    (20, 4)
    """

    def __init__(self, filters: int, kernel_size, *args, output_padding=None, **kwargs):
        super().__init__(filters, kernel_size, *args, **kwargs)
        if output_padding is not None:
            raise ValueError("Conv1DTranspose: only output_padding=None is supported")

    def _kernel_shape(self, channels):
        return (self.kernel_size, self.filters, channels)

    def compute_output_shape(self, input_shape):
        steps, _ = _check_sequence(self, input_shape)
        if steps is None:
            return (None, self.filters)
        out, _ = self.ops.conv1d_transpose_geometry(
            steps, self.kernel_size, self.strides, self.dilation_rate, self.padding
        )
        return (out, self.filters)

    def _forward(self, x, training, activation):
        self._y, self._cache = self.ops.conv1d_transpose_forward(
            x,
            self.kernel.value,
            self.bias.value if self.bias else None,
            *self._window,
            activation,
        )
        return self._y

    def _backward_op(self, dy, activation, out):
        return self.ops.conv1d_transpose_backward(
            self._cache,
            self.kernel.value,
            dy,
            *self._window,
            self.need_input_grad,
            activation=activation,
            y=self._y,
            out=out,
        )

    def flops(self):
        steps, channels = self.input_shape
        return 2 * steps * channels * self.kernel_size * self.filters
