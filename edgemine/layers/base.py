"""The Layer base class and the layer contract: what a layer implements and what it may assume.

A layer owns its ``Variable``s (value + gradient) in Keras's layouts, runs its math through
``self.ops`` (the backend, ``edgemine.kernels.interface.Backend``: never a kernel module by name)
and keeps in ``forward`` whatever its ``backward`` needs. A Sequential model needs no autograd tape.

The contract (tests/layer_harness.py checks every registered layer against it):

**Implement**

* ``__init__(**config)``: validate every argument with a clear error; call ``super().__init__``
  with the base keywords (``name``, ``input_shape``, ``trainable``, ...). Make no weights here.
* ``build(input_shape)``: ``input_shape`` has no batch axis. Create the weights with
  ``add_weight`` (in Keras's order), then call ``super().build(input_shape)``.
* ``compute_output_shape(input_shape)`` (without the batch axis); a clear error for a shape the
  layer cannot take.
* ``forward(x, training=False)`` -> y: ``x`` is a backend array with the batch axis first
  (float32, or int32 ids for ``input_dtype = "int"``). Keep what backward needs on ``self``; with
  ``training=True`` a backward follows, otherwise none does.
* ``backward(dy)`` -> dx: the gradient of the loss w.r.t. the last forward's input, given ``dy``
  w.r.t. its output. Set ``var.grad`` of every trainable variable and pass each ``var.grad_out``
  (see ``_grad_outs``) to the backend's backward op as ``out=``: the op then writes the gradient
  into the optimizer's buffer. Return None when ``self.need_input_grad`` is False (a model's first
  layer: the input gradient is skipped) or the input has no gradient (token ids).
* ``get_config()`` -> a JSON-able dict such that ``type(layer).from_config(config)`` makes an
  equal, unbuilt layer (weights travel separately). Register the class with ``@register``.
* optionally ``flops()`` (2 per multiply-add, one sample) and ``to_backend`` for layers that hold
  other layers (``Bidirectional``).

**May assume**

* ``build`` runs once, before the first forward, with ``self.ops`` already the model's backend.
* ``backward`` follows a ``forward(..., training=True)`` on the same batch, once.
* Arrays returned by ``self.ops`` live until the batch ends (``ops.batch_memory()``: the CUDA
  backend hands them out again to the next batch); anything that must outlive the batch (moving
  statistics) is updated in place or allocated under ``ops.lasting_memory()``.
* ``dy`` and the returned dx may be the backend's buffers: do not modify ``dy`` in place unless
  the layer produced it.

**Masking** (Keras's, from ``Embedding(mask_zero=True)``): ``supports_masking = True`` means
``forward`` accepts ``mask=`` ((batch, time) booleans); ``compute_mask(inputs, mask)`` gives the
next layer's mask; ``passes_mask = True`` passes a mask on unchanged without using it.

**Fusion** is declared by the layer, never inferred by the model from its class:

* ``fuses_activation_backward``: the layer ends with ``self.activation`` and offers
  ``backward_linear(dz)``, its backward without that activation's (a loss that applies the
  activation itself, fused softmax + cross-entropy, calls it directly).
* ``fuses_activation_forward``: the layer also offers ``forward_linear(x, training)``, its forward
  without the activation (the loss then applies it, in place of the cached output).
* ``absorbs_activation_below``: names of activations whose backward this layer can apply for the
  layer below in ``backward_through_activation(activation, dy)``; the model then calls the lower
  layer's ``backward_linear`` (max pooling absorbs ReLU's backward at a quarter of the size).
* ``applies_bias_activation_below`` / ``defers_bias_activation``: the upper layer applies the
  lower one's bias and activation after its own forward (``forward_after``) while the lower one
  runs ``forward_raw`` (max pooling after a ReLU convolution: max commutes with both).
* ``input_corner_read(input_shape)`` / ``computes_corner``: a layer that reads only the first
  (rows, cols) of its input says which; a layer below that ``computes_corner`` then computes only
  those, given ``corner=`` in its forward (a 'valid' pooling drops the odd last row of a
  convolution's output: the seed CNN's second convolution does 17 % less work).
"""

from __future__ import annotations

import contextvars
import math
import re
from typing import Any

import numpy as np

from .. import activations as activations_mod
from .. import initializers
from ..backend import get_ops

LAYER_REGISTRY: dict[str, type[Layer]] = {}

_name_counts: dict[str, int] = {}

#: True while model loading builds layers: ``add_weight`` then makes a zero-byte placeholder of
#: the weight's shape (no random draw, no memory), which the stored array replaces
BUILDING_PLACEHOLDERS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "edgemine_building_placeholders", default=False
)


def register(cls: type[Layer]) -> type[Layer]:
    """Make a layer class known to model loading and export by its class name."""
    LAYER_REGISTRY[cls.__name__] = cls
    return cls


def _snake(name: str) -> str:
    """Keras's default layer names: Conv2D -> conv2d, SimpleRNN -> simple_rnn, LSTM -> lstm."""
    out = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    return out.replace("2_d", "2d").replace("1_d", "1d")


def reset_name_counts() -> None:
    _name_counts.clear()


class Variable:
    """A weight: its value, its gradient after a backward pass, and whether it trains.

    ``grad_out`` is where the optimizer wants the next gradient written (a view into its flat
    gradient buffer, see ``edgemine.optimizers.Optimizer``), or None; layers pass it to the
    backend's backward ops as ``out``."""

    __slots__ = ("name", "value", "grad", "grad_out", "trainable")

    def __init__(self, name: str, value, trainable: bool = True):
        self.name = name
        self.value = value
        self.grad = None
        self.grad_out = None
        self.trainable = trainable

    @property
    def shape(self) -> tuple:
        return tuple(self.value.shape)


def normalize_tuple(value, n: int, what: str) -> tuple[int, ...]:
    """Accept an int or an n-tuple of positive ints (Keras's convention)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * n
    try:
        value = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{what} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(value) != n or any(v < 1 for v in value):
        raise ValueError(f"{what} must be {n} positive ints, got {value!r}")
    return value


def check_padding(padding: str) -> str:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


class Layer:
    """Base class of every layer. Subclasses implement build, compute_output_shape, forward,
    backward and get_config."""

    #: "int" for layers that take token ids (Sequential then casts inputs to int32)
    input_dtype: str = "float"
    #: whether a Keras mask (from Embedding(mask_zero=True)) passes through unchanged, as for
    #: Keras layers with supports_masking and no compute_mask of their own
    passes_mask: bool = False
    #: whether ``forward`` takes ``mask=`` (batch, time) booleans
    supports_masking: bool = False
    #: fusion hooks (see the module docstring): ``backward_linear`` / ``forward_linear`` exist
    fuses_activation_backward: bool = False
    fuses_activation_forward: bool = False
    #: activations of the layer below whose backward this layer's
    #: ``backward_through_activation`` applies
    absorbs_activation_below: frozenset[str] = frozenset()
    #: the layer below can leave its bias and activation to this one (``forward_after``), and
    #: this layer can leave them to the one above (``forward_raw``): see ``Graph.deferring``
    applies_bias_activation_below: frozenset[str] = frozenset()
    defers_bias_activation: bool = False
    #: ``forward`` (and ``forward_raw``) take ``corner=(rows, cols)``: compute only that top-left
    #: part of the output, all that the one layer reading it uses (see ``input_corner_read``)
    computes_corner: bool = False
    #: a merge layer: ``build`` gets a list of shapes, ``forward`` a list of arrays (and masks),
    #: ``backward`` returns a list of gradients, one per input
    multi_input: bool = False

    def __init__(
        self,
        name: str | None = None,
        input_shape: tuple | None = None,
        batch_input_shape: tuple | None = None,
        input_dim: int | None = None,
        trainable: bool = True,
        dtype: str | None = None,
        **kwargs: Any,
    ):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}() got unknown argument(s): {', '.join(sorted(kwargs))}"
            )
        if dtype not in (None, "float32"):
            raise ValueError(f"{type(self).__name__}: only dtype 'float32' is supported")
        base = _snake(type(self).__name__)
        if name is None:
            k = _name_counts.get(base, 0)
            _name_counts[base] = k + 1
            name = base if k == 0 else f"{base}_{k}"
        self.name = name
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        if input_dim is not None:
            input_shape = (int(input_dim),)
        if input_shape is not None:
            if isinstance(input_shape, (int, np.integer)):
                input_shape = (int(input_shape),)
            input_shape = tuple(None if d is None else int(d) for d in input_shape)
            if any(d is not None and d < 1 for d in input_shape):
                raise ValueError(f"{name}: input_shape must be positive, got {input_shape}")
        self.input_spec_shape = input_shape
        self.trainable = trainable
        self.built = False
        self.variables: list[Variable] = []
        self.input_shape: tuple | None = None
        self.output_shape: tuple | None = None
        self.ops = get_ops("cpu")
        self.need_input_grad = True
        #: the functional API's calls of this layer (``edgemine.models.graph.Node``)
        self.inbound_nodes: list = []

    # ----- building -----
    def add_weight(self, name: str, shape: tuple, initializer, trainable: bool = True) -> Variable:
        if BUILDING_PLACEHOLDERS.get():
            value = np.broadcast_to(np.zeros((), np.float32), tuple(shape))
        else:
            value = initializers.get(initializer)(tuple(shape), np.float32)
            value = np.ascontiguousarray(value, dtype=np.float32)
        var = Variable(name, value, trainable)
        self.variables.append(var)
        return var

    def build(self, input_shape: tuple) -> None:
        """Create the weights for an input of ``input_shape`` (without the batch axis)."""
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        self.built = True

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    # ----- computation -----
    def forward(self, x, training: bool = False):
        raise NotImplementedError  # abstract

    def backward(self, dy):
        raise NotImplementedError  # abstract

    def backward_through_activation(self, activation: str, dy):
        """The gradient of this layer's input AND of the ``activation`` of the layer below (one
        of ``absorbs_activation_below``): the model then runs that layer's ``backward_linear``.
        Only a layer that declares ``absorbs_activation_below`` implements it (the model calls
        it for no other), and a test holds every such layer to that."""
        raise NotImplementedError  # abstract

    def input_corner_read(self, input_shape: tuple) -> tuple[int, int] | None:
        """(rows, cols): the top-left part of an (h, w, c) input that this layer reads, when it
        leaves the rest unread; None when it reads it all."""
        return None

    def __call__(self, x, training: bool = False, mask=None):
        """On KerasTensors (the functional API): record the call and return the output's
        KerasTensor. On a host array: run the layer (building it on first use); ``mask``
        (batch, time) for layers that take a Keras mask."""
        from ..models.graph import call_symbolic, symbolic

        if symbolic(x):
            if mask is not None:
                raise ValueError(f"layer {self.name!r}: masks come from the graph, not mask=")
            return call_symbolic(self, x)
        x_np = np.asarray(x)
        if self.input_dtype == "float" and not np.issubdtype(x_np.dtype, np.floating):
            x_np = x_np.astype(np.float32)
        if not self.built:
            self.build(x_np.shape[1:])
        kwargs = {}
        if mask is not None:
            if not self.supports_masking:
                raise ValueError(f"layer {self.name!r} does not take a mask")
            kwargs["mask"] = self.ops.asarray(np.asarray(mask, dtype=bool))
        y = self.forward(self.ops.asarray(x_np), training=training, **kwargs)
        return self.ops.to_numpy(y)

    def compute_mask(self, inputs, mask):
        """The mask for the next layer: passed on unchanged, or ended (None)."""
        return mask if self.passes_mask else None

    # ----- weights -----
    @property
    def weights(self) -> list[Variable]:
        return self.variables

    @property
    def trainable_variables(self) -> list[Variable]:
        return [v for v in self.variables if v.trainable and self.trainable]

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(self.ops.to_numpy(v.value), copy=True) for v in self.variables]

    def set_weights(self, weights: list) -> None:
        if len(weights) != len(self.variables):
            raise ValueError(
                f"layer {self.name!r} expects {len(self.variables)} weight arrays, "
                f"got {len(weights)}"
            )
        for var, w in zip(self.variables, weights):
            w = np.asarray(w)
            if tuple(w.shape) != var.shape:
                raise ValueError(
                    f"layer {self.name!r}, weight {var.name!r}: expected shape {var.shape}, "
                    f"got {tuple(w.shape)}"
                )
            if not np.issubdtype(w.dtype, np.number):
                raise TypeError(f"layer {self.name!r}, weight {var.name!r}: not numeric")
            var.value = self.ops.asarray(w.astype(np.float32))

    @staticmethod
    def _grad_outs(*variables: Variable | None) -> tuple:
        """The ``out`` argument of a backward op: each variable's ``grad_out`` (None if absent)."""
        return tuple(None if v is None else v.grad_out for v in variables)

    def count_params(self) -> int:
        return int(sum(math.prod(v.shape) for v in self.variables))

    def flops(self) -> int:
        """Multiply-adds x2 of one sample's forward pass (0 for layers without arithmetic)."""
        return 0

    def to_backend(self, ops) -> None:
        """Move this layer's weights to another backend (cpu <-> cuda)."""
        for var in self.variables:
            host = self.ops.to_numpy(var.value)
            var.value = ops.asarray(host)
            var.grad = None
        self.ops = ops

    # ----- config -----
    def get_config(self) -> dict:
        config: dict[str, Any] = {"name": self.name, "trainable": self.trainable}
        if self.input_spec_shape is not None:
            config["input_shape"] = list(self.input_spec_shape)
        return config

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


class ActivationMixin:
    """For layers with a fused ``activation=``: backward = activation backward, then the linear
    part's ``backward_linear``. A loss may call ``backward_linear`` directly (fused softmax + CE)."""

    activation: str
    fuses_activation_backward = True

    def _set_activation(self, activation) -> None:
        self.activation = activations_mod.get(activation)

    def _activate(self, z):
        self._y = self.ops.activation_forward(self.activation, z)
        return self._y

    def backward(self, dy):
        return self.backward_linear(self.ops.activation_backward(self.activation, self._y, dy))

    def backward_linear(self, dz):
        raise NotImplementedError  # abstract


class KernelBiasMixin(ActivationMixin):
    """For layers with a ``kernel``, an optional ``bias`` and a fused activation whose backend
    backward op applies the activation's backward itself (fused with the bias gradient) and
    writes the weight gradients where the optimizer asks (``Variable.grad_out``). Subclasses
    implement ``_forward(x, training, activation)`` and
    ``_backward_op(dy, activation, out) -> (dx, dkernel, dbias)``."""

    fuses_activation_forward = True

    def forward(self, x, training=False):
        return self._forward(x, training, self.activation)

    def forward_linear(self, x, training=False):
        """The forward pass without the activation (a training step's loss applies a softmax
        or sigmoid itself, fused with the loss); the layer's cached output is that array, which
        the loss turns into the activation's output in place."""
        return self._forward(x, training, "linear")

    def backward(self, dy):
        return self._backward(dy, self.activation)

    def backward_linear(self, dz):
        return self._backward(dz, "linear")

    def _backward(self, dy, activation: str):
        dx, dk, db = self._backward_op(dy, activation, self._grad_outs(self.kernel, self.bias))
        self.kernel.grad = dk
        if self.bias is not None:
            self.bias.grad = db
        return dx

    def _forward(self, x, training: bool, activation: str):
        raise NotImplementedError  # abstract

    def _backward_op(self, dy, activation: str, out: tuple):
        raise NotImplementedError  # abstract


class SparseGradient:
    """A row-sparse gradient of a 2-D table: ``values[k]`` is the gradient of row ``rows[k]``.

    ``rows`` are unique. Embedding layers produce these so that no dense vocab x dim gradient is
    allocated per step; optimizers apply them with the dense update's result.
    """

    __slots__ = ("rows", "values", "shape")

    def __init__(self, rows, values, shape: tuple):
        self.rows = rows
        self.values = values
        self.shape = tuple(shape)
