"""The wrappers: Bidirectional (a recurrent layer forwards and a copy of it backwards, merged)
and TimeDistributed (a layer applied to every time step)."""

from __future__ import annotations

from .base import LAYER_REGISTRY, Layer, register
from .recurrent import BaseRNN

_MERGE_MODES = ("concat", "sum", "mul", "ave")


def _layer_from_config(entry, what: str) -> BaseRNN:
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise ValueError(f"Bidirectional: {what} must be {{'class_name': ..., 'config': {{...}}}}")
    cls = LAYER_REGISTRY.get(entry.get("class_name"))
    if cls is None or not issubclass(cls, BaseRNN):
        raise ValueError(
            f"Bidirectional: {what} must be a recurrent layer, got {entry.get('class_name')!r}"
        )
    return cls.from_config(dict(entry["config"]))


@register
class Bidirectional(Layer):
    """Bidirectional wrapper for LSTM, GRU and SimpleRNN, as in Keras.

    The wrapped layer's config is cloned into ``forward_layer`` and, with ``go_backwards``
    flipped, into ``backward_layer``; their outputs are merged by ``merge_mode`` ('concat',
    'sum', 'mul' or 'ave'). With ``return_sequences`` the backward output is reversed back to the
    input's time order, and masked steps output zeros (Keras's behaviour). Weights: the forward
    layer's (kernel, recurrent_kernel, bias), then the backward layer's.

    >>> import numpy as np
    >>> from edgemine.layers import LSTM
    >>> bi = Bidirectional(LSTM(4, return_sequences=True))
    >>> bi(np.zeros((2, 5, 3), dtype="float32")).shape
    (2, 5, 8)
    """

    supports_masking = True

    def __init__(
        self,
        layer: BaseRNN,
        merge_mode: str | None = "concat",
        backward_layer: BaseRNN | None = None,
        **kwargs,
    ):
        if isinstance(layer, dict):
            layer = _layer_from_config(layer, "layer")
        if isinstance(backward_layer, dict):
            backward_layer = _layer_from_config(backward_layer, "backward_layer")
        if not isinstance(layer, BaseRNN):
            raise TypeError(
                f"Bidirectional wraps an LSTM, GRU or SimpleRNN layer, got {type(layer).__name__}"
            )
        if merge_mode is None:
            raise ValueError(
                "Bidirectional(merge_mode=None) returns two tensors, which needs the functional "
                "API; use 'concat', 'sum', 'mul' or 'ave'"
            )
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"Bidirectional merge_mode must be one of {', '.join(_MERGE_MODES)}, got "
                f"{merge_mode!r}"
            )
        if (
            kwargs.get("input_shape") is None
            and kwargs.get("batch_input_shape") is None
            and layer.input_spec_shape is not None
        ):
            kwargs["input_shape"] = layer.input_spec_shape
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        self._layer_config = {"class_name": type(layer).__name__, "config": layer.get_config()}
        config = dict(self._layer_config["config"])
        config.pop("input_shape", None)
        self.forward_layer = type(layer).from_config({**config, "name": f"forward_{layer.name}"})
        self._backward_config = None
        if backward_layer is None:
            config["go_backwards"] = not layer.go_backwards
            self.backward_layer = type(layer).from_config(
                {**config, "name": f"backward_{layer.name}"}
            )
        else:
            if not isinstance(backward_layer, BaseRNN):
                raise TypeError(
                    f"Bidirectional backward_layer must be a recurrent layer, got "
                    f"{type(backward_layer).__name__}"
                )
            if backward_layer.go_backwards == layer.go_backwards:
                raise ValueError(
                    "Bidirectional: backward_layer must have the opposite go_backwards of layer"
                )
            if backward_layer.return_sequences != layer.return_sequences:
                raise ValueError(
                    "Bidirectional: backward_layer must have the same return_sequences as layer"
                )
            self._backward_config = {
                "class_name": type(backward_layer).__name__,
                "config": backward_layer.get_config(),
            }
            bconfig = dict(self._backward_config["config"])
            bconfig.pop("input_shape", None)
            self.backward_layer = type(backward_layer).from_config(bconfig)
        self.return_sequences = layer.return_sequences
        for sub in (self.forward_layer, self.backward_layer):
            # Keras: with return_sequences, a masked step's output is zero in both directions
            sub.zero_output_for_mask = self.return_sequences
        self._y = None

    @property
    def layers(self) -> tuple[BaseRNN, BaseRNN]:
        return (self.forward_layer, self.backward_layer)

    def build(self, input_shape):
        for sub, prefix in ((self.forward_layer, "forward"), (self.backward_layer, "backward")):
            sub.ops = self.ops
            sub.build(tuple(input_shape))
            for var in sub.variables:
                var.name = f"{prefix}/{var.name}"
        self.variables = [*self.forward_layer.variables, *self.backward_layer.variables]
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(tuple(input_shape))
        if self.merge_mode == "concat":
            return (*shape[:-1], 2 * shape[-1])
        return shape

    def to_backend(self, ops) -> None:
        for sub in self.layers:
            sub.to_backend(ops)
        self.ops = ops

    def forward(self, x, training=False, mask=None):
        yf = self.forward_layer.forward(x, training=training, mask=mask)
        yb = self.backward_layer.forward(x, training=training, mask=mask)
        if self.return_sequences:
            yb = self.ops.reverse_time(yb)
        self._y = (yf, yb)
        return self.ops.merge_forward(self.merge_mode, yf, yb)

    def backward(self, dy):
        yf, yb = self._y
        dyf, dyb = self.ops.merge_backward(self.merge_mode, yf, yb, dy)
        if self.return_sequences:
            dyb = self.ops.reverse_time(dyb)
        for sub in self.layers:
            sub.need_input_grad = self.need_input_grad
        dxf = self.forward_layer.backward(dyf)
        dxb = self.backward_layer.backward(dyb)
        self._y = None
        return None if dxf is None else self.ops.add(dxf, dxb)

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def flops(self):
        return self.forward_layer.flops() + self.backward_layer.flops()

    def get_config(self):
        config = {
            **super().get_config(),
            "layer": self._layer_config,
            "merge_mode": self.merge_mode,
        }
        if self._backward_config is not None:
            config["backward_layer"] = self._backward_config
        return config


@register
class TimeDistributed(Layer):
    """Applies ``layer`` to every time step: (batch, steps, ...) -> (batch, steps, ...), as
    Keras's TimeDistributed. The steps are folded into the batch (one call of the inner layer,
    no copy), so the inner layer's weights are shared by every step and are this layer's
    weights, under their own names. A Keras mask passes on unchanged.

    >>> import numpy as np
    >>> from edgemine.layers import Dense
    >>> td = TimeDistributed(Dense(2))
    >>> td(np.zeros((4, 5, 3), dtype="float32")).shape, [v.name for v in td.weights]
    ((4, 5, 2), ['kernel', 'bias'])
    """

    passes_mask = True

    def __init__(self, layer: Layer, **kwargs):
        if isinstance(layer, dict):
            cls = LAYER_REGISTRY.get(layer.get("class_name"))
            if cls is None or not isinstance(layer.get("config"), dict):
                raise ValueError(
                    "TimeDistributed: layer must be a layer or {'class_name': <a known layer>, "
                    f"'config': {{...}}}}, got {layer!r}"
                )
            layer = cls.from_config(dict(layer["config"]))
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed wraps a layer instance, got {type(layer).__name__}")
        if layer.input_dtype != "float":
            raise TypeError(f"TimeDistributed cannot wrap {type(layer).__name__} (token ids)")
        super().__init__(**kwargs)
        self.layer = layer

    @property
    def layers(self) -> tuple[Layer]:
        return (self.layer,)

    def _child_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) < 2:
            raise ValueError(
                f"{self.name}: TimeDistributed takes (batch, steps, ...) inputs with at least "
                f"3 axes, got per-sample shape {tuple(input_shape)}"
            )
        return tuple(input_shape[1:])

    def build(self, input_shape):
        child = self._child_shape(tuple(input_shape))
        self.layer.ops = self.ops
        if not self.layer.built:
            self.layer.build(child)
        elif tuple(self.layer.input_shape) != child:
            raise ValueError(
                f"{self.name}: the wrapped layer was built for {self.layer.input_shape}, "
                f"each step here is {child}"
            )
        self.variables = self.layer.variables
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        child = self._child_shape(tuple(input_shape))
        return (input_shape[0], *self.layer.compute_output_shape(child))

    def to_backend(self, ops) -> None:
        self.layer.to_backend(ops)
        self.ops = ops

    def forward(self, x, training=False):
        self._x_shape = tuple(x.shape)
        batch, steps = self._x_shape[:2]
        y = self.layer.forward(
            self.ops.reshape(x, (batch * steps, *self._x_shape[2:])), training=training
        )
        return self.ops.reshape(y, (batch, steps, *tuple(y.shape)[1:]))

    def backward(self, dy):
        shape = tuple(dy.shape)
        self.layer.need_input_grad = self.need_input_grad
        dx = self.layer.backward(self.ops.reshape(dy, (shape[0] * shape[1], *shape[2:])))
        return None if dx is None else self.ops.reshape(dx, self._x_shape)

    def flops(self):
        return self.input_shape[0] * self.layer.flops() if self.input_shape[0] else 0

    def get_config(self):
        inner = {"class_name": type(self.layer).__name__, "config": self.layer.get_config()}
        return {**super().get_config(), "layer": inner}
