"""Conv2D over NHWC images with a Keras (kh, kw, cin, cout) kernel."""

from __future__ import annotations

from .. import initializers
from .base import KernelBiasMixin, Layer, check_padding, normalize_tuple, register


@register
class Conv2D(KernelBiasMixin, Layer):
    """2-D convolution, channels_last.

    >>> Conv2D(32, (3, 3), activation="relu").compute_output_shape((28, 28, 1))
    (26, 26, 32)
    """

    def __init__(
        self,
        filters: int,
        kernel_size,
        strides=(1, 1),
        padding: str = "valid",
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        data_format: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError("Conv2D supports data_format='channels_last' (NHWC) only")
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"Conv2D filters must be a positive int, got {filters!r}")
        self.filters = filters
        self.kernel_size = normalize_tuple(kernel_size, 2, "kernel_size")
        self.strides = normalize_tuple(strides, 2, "strides")
        self.padding = check_padding(padding)
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.serialize(kernel_initializer)
        self.bias_initializer = initializers.serialize(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.name}: Conv2D expects (height, width, channels) inputs, got {input_shape}"
            )
        cin = input_shape[-1]
        self.kernel = self.add_weight(
            "kernel", (*self.kernel_size, cin, self.filters), self.kernel_initializer
        )
        self.bias = (
            self.add_weight("bias", (self.filters,), self.bias_initializer)
            if self.use_bias
            else None
        )
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.name}: Conv2D expects (height, width, channels) inputs, got {input_shape}"
            )
        h, w, _ = input_shape
        oh, _ = self.ops.conv_output_size(h, self.kernel_size[0], self.strides[0], self.padding)
        ow, _ = self.ops.conv_output_size(w, self.kernel_size[1], self.strides[1], self.padding)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"{self.name}: input {input_shape} is smaller than kernel {self.kernel_size}"
            )
        return (oh, ow, self.filters)

    @property
    def defers_bias_activation(self) -> bool:
        """Whether the convolution leaves its bias and activation to a max pooling that reads it
        alone (``Graph.deferring``): they commute with max and the pooled output is a quarter
        of the size (seed CNN, batch-256 prediction 8 % faster on the CPU); not where the
        backend's GEMM applies them as it writes (CUDA: a launch more, nothing saved)."""
        return not self.ops.gemm_epilogue

    computes_corner = True

    def forward(self, x, training=False, corner=None):
        """``corner``: (rows, cols), compute only that top-left part of the output."""
        return self._forward(x, training, self.activation, corner=corner)

    def forward_raw(self, x, training=False, corner=None):
        """The convolution without bias and activation (``MaxPooling2D.forward_after`` adds
        them); its backward is then ``backward_linear``."""
        return self._forward(x, training, "linear", with_bias=False, corner=corner)

    def _forward(self, x, training, activation, with_bias=True, corner=None):
        self._y, cols = self.ops.conv2d_forward(
            x,
            self.kernel.value,
            self.bias.value if self.bias and with_bias else None,
            self.strides,
            self.padding,
            activation,
            keep=training,
            corner=corner,
        )
        self._x_shape = x.shape
        self._corner = corner
        self._cols = cols if training else None
        return self._y

    def _backward_op(self, dy, activation, out):
        return self.ops.conv2d_backward(
            self._x_shape,
            self._cols,
            self.kernel.value,
            dy,
            self.strides,
            self.padding,
            self.need_input_grad,
            activation=activation,
            y=self._y,
            out=out,
            corner=self._corner,
        )

    def flops(self):
        oh, ow, f = self.output_shape
        kh, kw = self.kernel_size
        return 2 * oh * ow * f * kh * kw * self.input_shape[-1]

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }
