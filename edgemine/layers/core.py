"""Dense, Activation, Flatten, Reshape, Dropout and the Input placeholder."""

from __future__ import annotations

import math

import numpy as np

from .. import initializers
from ..utils import get_rng
from .base import ActivationMixin, KernelBiasMixin, Layer, register

_INPUT_DTYPES = {
    None: "float32",
    "float32": "float32",
    "float64": "float32",  # edgemine computes in float32
    "int32": "int32",
    "int64": "int32",
    "int": "int32",
}


@register
class InputLayer(Layer):
    """A model's input: its per-sample shape and dtype (``int32`` for token ids). It computes
    nothing; ``output`` is the KerasTensor that ``keras.Input`` returns."""

    def __init__(self, shape=None, input_shape=None, dtype=None, batch_shape=None, **kwargs):
        if batch_shape is not None:
            shape = tuple(batch_shape)[1:]
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        key = getattr(dtype, "name", dtype)
        if key not in _INPUT_DTYPES:
            raise ValueError(f"Input dtype must be one of float32, int32, int64; got {dtype!r}")
        super().__init__(input_shape=shape if shape is not None else input_shape, **kwargs)
        if self.input_spec_shape is None:
            raise ValueError("InputLayer needs shape=(...)")
        self.dtype = _INPUT_DTYPES[key]
        self.input_shape = self.output_shape = self.input_spec_shape
        self.built = True
        from ..models.graph import KerasTensor, Node

        self.output = KerasTensor((None, *self.input_spec_shape), self.dtype, name=self.name)
        self.output.node = Node(self, [], self.output)
        self.inbound_nodes.append(self.output.node)

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        return dy

    def get_config(self):
        config = super().get_config()
        config["shape"] = config.pop("input_shape")
        if self.dtype != "float32":
            config["dtype"] = self.dtype
        return config


def Input(shape=None, dtype=None, name: str | None = None, batch_shape=None):  # noqa: N802
    """``keras.Input``: the KerasTensor a model starts from, for the functional API
    (``Model(inputs, outputs)``) and as the first entry of a ``Sequential``. ``shape`` has no
    batch axis; ``None`` marks a variable length (``shape=(None,)`` for token ids of any
    length); ``dtype="int32"`` for token ids.

    >>> Input(shape=(None,), dtype="int32").shape
    (None, None)
    """
    return InputLayer(shape=shape, dtype=dtype, name=name, batch_shape=batch_shape).output


@register
class Dense(KernelBiasMixin, Layer):
    """Fully connected layer over the last axis: ``activation(x @ kernel + bias)``.

    >>> Dense(3, activation="relu", input_shape=(4,)).get_config()["units"]
    3
    """

    passes_mask = True

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense units must be a positive int, got {units!r}")
        self.units = int(units)
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.serialize(kernel_initializer)
        self.bias_initializer = initializers.serialize(bias_initializer)

    def build(self, input_shape):
        if len(input_shape) < 1 or input_shape[-1] is None:
            raise ValueError(f"{self.name}: Dense needs a known last input axis, got {input_shape}")
        self.kernel = self.add_weight(
            "kernel", (input_shape[-1], self.units), self.kernel_initializer
        )
        self.bias = (
            self.add_weight("bias", (self.units,), self.bias_initializer) if self.use_bias else None
        )
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def _forward(self, x, training, activation):
        self._x = x
        self._y = self.ops.dense_forward(
            x, self.kernel.value, self.bias.value if self.bias else None, activation
        )
        return self._y

    def _backward_op(self, dy, activation, out):
        return self.ops.dense_backward(
            self._x,
            self.kernel.value,
            dy,
            self.need_input_grad,
            activation=activation,
            y=self._y,
            out=out,
        )

    def flops(self):
        rows = math.prod(self.input_shape[:-1]) if len(self.input_shape) > 1 else 1
        return 2 * rows * self.input_shape[-1] * self.units

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }


@register
class Activation(ActivationMixin, Layer):
    """Applies an activation by name: ``Activation('relu')``."""

    passes_mask = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._set_activation(activation)

    def forward(self, x, training=False):
        return self._activate(x)

    def backward_linear(self, dz):
        return dz

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@register
class Flatten(Layer):
    """Flattens each sample to 1-D in row-major (H, W, C) order, as Keras does for NHWC."""

    def compute_output_shape(self, input_shape):
        if any(d is None for d in input_shape):
            raise ValueError(
                f"{self.name}: Flatten needs a fully known input shape, got {input_shape}"
            )
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        self._shape = tuple(x.shape)
        return self.ops.reshape(x, (self._shape[0], math.prod(self._shape[1:])))

    def backward(self, dy):
        return self.ops.reshape(dy, self._shape)


@register
class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one axis may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1:
            raise ValueError("Reshape: at most one axis of target_shape may be -1")

    def compute_output_shape(self, input_shape):
        total = math.prod(input_shape)
        known = math.prod(d for d in self.target_shape if d != -1)
        shape = tuple(total // known if d == -1 else d for d in self.target_shape)
        if math.prod(shape) != total:
            raise ValueError(
                f"{self.name}: cannot reshape {input_shape} ({total} values) to {self.target_shape}"
            )
        return shape

    def forward(self, x, training=False):
        self._shape = tuple(x.shape)
        return self.ops.reshape(x, (self._shape[0], *self.output_shape))

    def backward(self, dy):
        return self.ops.reshape(dy, self._shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@register
class Dropout(Layer):
    """Inverted dropout: zeroes a fraction ``rate`` of the inputs in training, identity otherwise."""

    passes_mask = True

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def forward(self, x, training=False):
        self._mask = None
        if not training or self.rate == 0.0:
            return x
        y, self._mask = self.ops.dropout_forward(x, self.rate, self._rng or get_rng())
        return y

    def backward(self, dy):
        return dy if self._mask is None else self.ops.dropout_backward(dy, self._mask)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
