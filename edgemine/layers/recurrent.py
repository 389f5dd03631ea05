"""Recurrent layers with Keras's weight layouts, defaults and masking: LSTM, GRU, SimpleRNN.

Weights (Keras order): ``kernel`` (features, G * units), ``recurrent_kernel`` (units, G *
units), ``bias``; G = 4 for LSTM (gates i, f, c, o; bias (4u,)), 3 for GRU (gates z, r, h;
reset_after, bias (2, 3u): input bias then recurrent bias), 1 for SimpleRNN. The math runs in
the backend (``ops.rnn_forward`` / ``ops.rnn_backward``).
"""

from __future__ import annotations

import numpy as np

from .. import activations as activations_mod
from .. import initializers
from ..utils import get_rng
from .base import Layer, register

_RNN_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


def _check_activation(value, what: str, layer: str) -> str:
    name = activations_mod.get(value)
    if name not in _RNN_ACTIVATIONS:
        raise ValueError(
            f"{layer}: {what} {value!r} is not supported in a recurrent cell; use one of "
            f"{', '.join(_RNN_ACTIVATIONS)}"
        )
    return name


def _check_rate(value, what: str, layer: str) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{layer}: {what} must be a number in [0, 1), got {value!r}") from None
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{layer}: {what} must be in [0, 1), got {value!r}")
    return rate


class BaseRNN(Layer):
    """Shared base of LSTM, GRU and SimpleRNN: config, checks, masking, forward and backward.

    Subclasses set ``cell`` (the backend's cell name), ``gates`` (G) and the bias layout.
    """

    cell: str = ""
    gates: int = 1
    supports_masking = True

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"{kind} units must be a positive int, got {units!r}")
        if return_state:
            raise ValueError(
                f"{self.name}: {kind}(return_state=True) returns several tensors, which needs the "
                "functional API; a Sequential model (in Keras too) cannot use it. Use "
                "return_sequences=True, or the last output (the default), instead"
            )
        if stateful:
            raise ValueError(f"{self.name}: stateful recurrent layers are not supported")
        self.units = int(units)
        self.activation = _check_activation(activation, "activation", self.name)
        self.recurrent_activation = _check_activation(
            recurrent_activation, "recurrent_activation", self.name
        )
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.serialize(kernel_initializer)
        self.recurrent_initializer = initializers.serialize(recurrent_initializer)
        self.bias_initializer = initializers.serialize(bias_initializer)
        self.dropout = _check_rate(dropout, "dropout", self.name)
        self.recurrent_dropout = _check_rate(recurrent_dropout, "recurrent_dropout", self.name)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self.return_sequences = bool(return_sequences)
        self.return_state = False
        self.go_backwards = bool(go_backwards)
        self.unroll = bool(unroll)  # accepted for Keras compatibility; the kernel never unrolls
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self._cache = None

    # ----- building -----
    def _bias_shape(self) -> tuple:
        return (self.gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def build(self, input_shape):
        kind = type(self).__name__
        if len(input_shape) != 2:
            raise ValueError(
                f"{self.name}: {kind} expects input of rank 3 (batch, timesteps, features), got "
                f"rank {len(input_shape) + 1}: (None, {', '.join(map(str, input_shape))})"
            )
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: {kind} needs a known feature axis, got {input_shape}")
        g = self.gates * self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], g), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (self.units, g), self.recurrent_initializer
        )
        self.bias = (
            self.add_weight("bias", self._bias_shape(), self._bias_init())
            if self.use_bias
            else None
        )
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], self.units)
        return (self.units,)

    # ----- computation -----
    def forward(self, x, training=False, mask=None):
        kind = type(self).__name__
        if x.ndim != 3:
            raise ValueError(
                f"{self.name}: {kind} expects input of rank 3 (batch, timesteps, features), got "
                f"shape {tuple(x.shape)}"
            )
        features = tuple(x.shape)[-1]  # a tuple: device arrays' shapes refuse negative indices
        if features != self.input_shape[-1]:
            raise ValueError(
                f"{self.name}: {kind} was built for {self.input_shape[-1]} features, got {features}"
            )
        if mask is not None and tuple(mask.shape) != tuple(x.shape[:2]):
            raise ValueError(
                f"{self.name}: mask shape {tuple(mask.shape)} does not match the input's "
                f"(batch, timesteps) {tuple(x.shape[:2])}"
            )
        y, self._cache = self.ops.rnn_forward(
            self.cell,
            x,
            self.kernel.value,
            self.recurrent_kernel.value,
            None if self.bias is None else self.bias.value,
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            mask=mask,
            go_backwards=self.go_backwards,
            return_sequences=self.return_sequences,
            zero_output_for_mask=self.zero_output_for_mask,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            rng=self._rng or get_rng(),
            training=training,
        )
        return y

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward needs a forward pass with training=True")
        dx, dk, drk, db = self.ops.rnn_backward(
            self._cache,
            dy,
            self.need_input_grad,
            out=self._grad_outs(self.kernel, self.recurrent_kernel, self.bias),
        )
        self.kernel.grad = dk
        self.recurrent_kernel.grad = drk
        if self.bias is not None:
            self.bias.grad = db
        self._cache = None
        return dx

    def compute_mask(self, inputs, mask=None):
        """The output's mask: the input mask for a sequence output, None for the last step."""
        return mask if self.return_sequences else None

    def flops(self):
        steps = self.input_shape[0] or 1
        g = self.gates * self.units
        return 2 * steps * (self.input_shape[-1] * g + self.units * g)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": self.activation,
            "recurrent_activation": self.recurrent_activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "recurrent_initializer": self.recurrent_initializer,
            "bias_initializer": self.bias_initializer,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": False,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }


@register
class LSTM(BaseRNN):
    """Long short-term memory (Hochreiter & Schmidhuber), as Keras computes it.

    ``i, f, c~, o = act_r(z_i), act_r(z_f), act(z_c), act_r(z_o)`` with
    ``z = x_t @ kernel + h @ recurrent_kernel + bias``; ``c = f * c + i * c~``;
    ``h = o * act(c)``. ``unit_forget_bias`` starts the forget-gate bias at 1.

    >>> import numpy as np
    >>> lstm = LSTM(8, return_sequences=True)
    >>> lstm(np.zeros((2, 5, 3), dtype="float32")).shape
    (2, 5, 8)
    >>> [w.shape for w in lstm.get_weights()]
    [(3, 32), (8, 32), (32,)]
    """

    cell = "lstm"
    gates = 4

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias: bool = True,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs,
    ):
        super().__init__(
            units,
            activation,
            recurrent_activation,
            use_bias,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            dropout,
            recurrent_dropout,
            seed,
            return_sequences,
            return_state,
            go_backwards,
            stateful,
            unroll,
            zero_output_for_mask,
            **kwargs,
        )
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base = initializers.get(self.bias_initializer)
        u = self.units

        def init(shape, dtype=np.float32):
            # Keras: bias_initializer for i, c, o and ones for the forget gate
            return np.concatenate(
                [base((u,), dtype), np.ones((u,), dtype), base((2 * u,), dtype)]
            ).astype(dtype)

        return init

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@register
class GRU(BaseRNN):
    """Gated recurrent unit, Keras's default ``reset_after=True`` form (the cuDNN-compatible one).

    ``z, r = act_r(xz + hz), act_r(xr + hr)``; ``hh = act(xh + r * hh_rec)``;
    ``h = z * h + (1 - z) * hh``, where x* = x_t @ kernel + input bias and h* = h @
    recurrent_kernel + recurrent bias; gate order z, r, h.

    >>> import numpy as np
    >>> gru = GRU(4)
    >>> gru(np.zeros((2, 5, 3), dtype="float32")).shape
    (2, 4)
    >>> [w.shape for w in gru.get_weights()]
    [(3, 12), (4, 12), (2, 12)]
    """

    cell = "gru"
    gates = 3

    def __init__(
        self,
        units: int,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        reset_after: bool = True,
        zero_output_for_mask: bool = False,
        **kwargs,
    ):
        super().__init__(
            units,
            activation,
            recurrent_activation,
            use_bias,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            dropout,
            recurrent_dropout,
            seed,
            return_sequences,
            return_state,
            go_backwards,
            stateful,
            unroll,
            zero_output_for_mask,
            **kwargs,
        )
        if not reset_after:
            raise ValueError(
                f"{self.name}: GRU(reset_after=False) is not supported; use the Keras default "
                "reset_after=True"
            )
        self.reset_after = True

    def _bias_shape(self):
        return (2, 3 * self.units)

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


@register
class SimpleRNN(BaseRNN):
    """Fully connected recurrence: ``h = act(x_t @ kernel + h @ recurrent_kernel + bias)``.

    >>> import numpy as np
    >>> SimpleRNN(6)(np.zeros((2, 5, 3), dtype="float32")).shape
    (2, 6)
    """

    cell = "simple_rnn"
    gates = 1

    def __init__(
        self,
        units: int,
        activation="tanh",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs,
    ):
        super().__init__(
            units,
            activation,
            "sigmoid",
            use_bias,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            dropout,
            recurrent_dropout,
            seed,
            return_sequences,
            return_state,
            go_backwards,
            stateful,
            unroll,
            zero_output_for_mask,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        del config["recurrent_activation"]
        return config
