"""``Sequential``: a linear stack of layers, run as a functional model of one chain.

>>> import numpy as np
>>> from edgemine.layers import Dense, Input
>>> model = Sequential([Input(shape=(3,)), Dense(4, activation="relu"), Dense(2, activation="softmax")])
>>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
>>> model.predict(np.zeros((5, 3), dtype="float32")).shape
(5, 2)
"""

from __future__ import annotations

from collections.abc import Iterable

from ..layers.base import Layer
from ..layers.core import InputLayer
from .graph import Graph, KerasTensor, call_symbolic
from .model import Model


class Sequential(Model):
    """A linear stack of layers with Keras's training API."""

    #: summary() prints no "Connected to" column
    is_chain = True

    def __init__(self, layers: Iterable[Layer] | None = None, name: str | None = None):
        self._init_state(name or "sequential")
        self._layers: list[Layer] = []
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self._layers)

    def add(self, layer: Layer | KerasTensor) -> None:
        """Append a layer (or ``keras.Input(...)``); the model builds as soon as the input
        shape is known."""
        if isinstance(layer, KerasTensor):
            node = layer.node
            if node is None or node.inputs or not isinstance(node.layer, InputLayer):
                raise TypeError("Sequential.add takes layers, or keras.Input(...) first")
            layer = node.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects an edgemine layer, got {type(layer).__name__}")
        if any(existing is layer for existing in self._layers):
            raise ValueError(f"layer {layer.name!r} is already in the model")
        if layer.name in {existing.name for existing in self._layers}:
            raise ValueError(f"duplicate layer name {layer.name!r}")
        if isinstance(layer, InputLayer) and self._layers:
            raise ValueError("an Input can only be the first entry of a Sequential model")
        if layer.multi_input:
            raise TypeError(
                f"layer {layer.name!r} merges several tensors: use the functional API "
                "(keras.Input, layer calls, keras.Model) for it"
            )
        self._layers.append(layer)
        try:
            if len(self._layers) == 1 and layer.input_spec_shape is not None:
                self.build((None, *layer.input_spec_shape))
            elif self.built:
                self._chain(self.input_shape)
        except Exception:
            self._layers.pop()  # the model stays as it was
            if self._layers and self.built:
                self._chain(self.input_shape)
            raise

    def pop(self) -> Layer:
        if not self._layers:
            raise ValueError("pop from an empty model")
        layer = self._layers.pop()
        if self.built and self._layers:
            self._chain(self.input_shape)
        elif not self._layers:
            self.built, self._graph = False, None
        return layer

    def build(self, input_shape: tuple | None = None) -> None:
        """Build every layer for ``input_shape`` (with the batch axis first, as in Keras)."""
        if not self._layers:
            raise ValueError("the model has no layers")
        if input_shape is None:
            if self._layers[0].input_spec_shape is None:
                raise ValueError(
                    "the model's input shape is unknown: give the first layer input_shape=... "
                    "or call build((None, ...))"
                )
            input_shape = (None, *self._layers[0].input_spec_shape)
        self._chain(tuple(input_shape)[1:])

    def _build_for(self, x) -> None:
        self.build((None, *x.shape[1:]))

    def _chain(self, shape: tuple) -> None:
        """The graph of the chain from an input of per-sample ``shape``."""
        first, rest = self._layers[0], self._layers[1:]
        if isinstance(first, InputLayer):
            if tuple(first.input_spec_shape) != tuple(shape):
                raise ValueError(
                    f"the model's Input has shape {first.input_spec_shape}, not {shape}"
                )
            source = first
        else:
            source, rest = InputLayer(shape=shape, name=f"{self.name}_input"), self._layers
        tensor = source.output
        for layer in rest:
            if not layer.built:
                layer.ops = self.ops
            tensor = call_symbolic(layer, tensor)
        self._set_graph(Graph([source.output], [tensor]))

    def get_config(self) -> dict:
        shape = self.input_shape
        return {
            "name": self.name,
            "layers": [
                {"class_name": type(layer).__name__, "config": layer.get_config()}
                for layer in self._layers
            ],
            "input_shape": None if shape is None else list(shape),
        }
