"""``Model``: a graph of layers from ``keras.Input`` to its outputs, with Keras's training API.

The functional API as in Keras: call layers on KerasTensors, then ``Model(inputs, outputs)``.
Several inputs (x as a list, or a dict by input name), shared layers, merge layers (``Add``,
``Concatenate``, ...) and several outputs (a loss and metrics per output, targets as a list or
a dict by output name, as in Keras 3: see :mod:`edgemine.models.heads`).

>>> import numpy as np
>>> from edgemine.layers import Concatenate, Dense, Input
>>> a, b = Input(shape=(3,), name="a"), Input(shape=(2,), name="b")
>>> h = Concatenate()([Dense(4, activation="relu")(a), b])
>>> model = Model([a, b], Dense(1, activation="sigmoid")(h))
>>> model.compile(optimizer="adam", loss="binary_crossentropy")
>>> model.predict([np.zeros((5, 3)), np.zeros((5, 2))]).shape
(5, 1)
>>> two = Model([a, b], [Dense(1, name="size")(h), Dense(3, activation="softmax", name="kind")(h)])
>>> two.compile("sgd", loss={"size": "mse", "kind": "sparse_categorical_crossentropy"},
...             loss_weights=[0.5, 1.0], metrics={"kind": ["accuracy"]})
>>> logs = two.evaluate([np.zeros((4, 3)), np.zeros((4, 2))],
...                     {"size": np.zeros(4), "kind": np.arange(4) % 3}, verbose=0, return_dict=True)
>>> list(logs)
['kind_accuracy', 'kind_loss', 'loss', 'size_loss']
"""

from __future__ import annotations

import os

import numpy as np

from .. import metrics as metrics_mod
from .. import optimizers as optimizers_mod
from ..backend import get_ops
from ..layers.base import Layer, Variable
from ..model_inputs import Inputs, model_inputs, model_targets, numeric_array
from . import summary as summary_mod
from .graph import Graph, KerasTensor, run_backward, run_forward
from .heads import split_targets
from .training import Trainer

_FUSABLE = {
    "categorical_crossentropy": "softmax",
    "sparse_categorical_crossentropy": "softmax",
    "binary_crossentropy": "sigmoid",
}


def _tensor_list(value, what: str) -> tuple[list[KerasTensor], bool]:
    """(tensors, given as one tensor?) of a model's ``inputs`` or ``outputs`` argument."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, KerasTensor):
        return [value], True
    if isinstance(value, (list, tuple)) and value:
        return list(value), False
    raise TypeError(
        f"Model {what} must be a KerasTensor or a list of them (from keras.Input and layer "
        f"calls), got {type(value).__name__}"
    )


class Model(Trainer):
    """A functional model: ``Model(inputs, outputs, name=None)``."""

    def __init__(self, inputs=None, outputs=None, name: str | None = None):
        if inputs is None or outputs is None:
            raise TypeError(
                "Model(inputs, outputs) needs both: edgemine builds models from keras.Input and "
                "layer calls, or as a Sequential (subclassing Model with a custom call() needs "
                "automatic differentiation, which edgemine does not have)"
            )
        self._init_state(name or "functional")
        ins, _ = _tensor_list(inputs, "inputs")
        outs, single = _tensor_list(outputs, "outputs")
        self._set_graph(Graph(ins, outs))
        self._single_output = single

    def _init_state(self, name: str) -> None:
        self.name = name
        self.built = False
        self._graph: Graph | None = None
        self._single_output = True
        self.optimizer: optimizers_mod.Optimizer | None = None
        self.loss = None
        self.metric_names: list[str] = []
        self.device = "cpu"
        self.ops = get_ops("cpu")
        self.stop_training = False
        self.history = None
        self.preprocessing: dict | None = None
        self.class_names: list[str] | None = None
        self.epochs_trained = 0
        #: every epoch's logs (loss, metrics, val_*) over all fits, kept in the model file
        self.history_log: dict[str, list[float | None]] = {}
        #: the generator of this model's shuffles and dropout masks: made from edgemine's on the
        #: first training step, and carried by checkpoints (a resumed run draws the same)
        self.rng: np.random.Generator | None = None
        self.fit_batch_size: int | None = None  # the last fit's, which checkpoints record

    def _set_graph(self, graph: Graph) -> None:
        """Use ``graph``: every layer on the model's backend, input gradients only where a
        layer reads something other than a model input."""
        self._graph = graph
        for layer in graph.layers:
            if layer.ops is not self.ops:
                layer.to_backend(self.ops)
            layer.need_input_grad = any(
                any(t.node.inputs for t in node.inputs)
                for node in graph.nodes
                if node.layer is layer
            )
        self.built = True
        if self.loss is not None:
            self._resolve_metrics()

    # ----- structure -----
    @property
    def layers(self) -> list[Layer]:
        return list(self._graph.layers) if self._graph is not None else []

    @property
    def inputs(self) -> list[KerasTensor]:
        return list(self._graph.inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        return list(self._graph.outputs)

    @property
    def input_names(self) -> list[str]:
        return [t.node.layer.name for t in self._graph.inputs]

    @property
    def input_shape(self):
        """The per-sample input shape (a list of them for several inputs)."""
        if self._graph is None:
            return None
        shapes = [tuple(t.shape[1:]) for t in self._graph.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        """The per-sample output shape (a list of them for several outputs)."""
        self._require_built()
        shapes = [tuple(t.shape[1:]) for t in self._graph.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def _require_built(self) -> None:
        if not self.built:
            raise ValueError(
                "the model is not built yet: give the first layer input_shape=..., call "
                "build(), or call fit/predict first"
            )

    @property
    def variables(self) -> list[Variable]:
        return [v for layer in self.layers for v in layer.variables]

    @property
    def trainable_variables(self) -> list[Variable]:
        return [v for layer in self.layers for v in layer.trainable_variables]

    @property
    def weights(self) -> list[Variable]:
        return self.variables

    def count_params(self) -> int:
        self._require_built()
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self) -> list[np.ndarray]:
        """Every layer's weights, host copies, in Keras's order."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: list) -> None:
        self._require_built()
        weights = list(weights)
        expected = sum(len(layer.variables) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"model expects {expected} weight arrays, got {len(weights)}")
        i = 0
        for layer in self.layers:
            n = len(layer.variables)
            layer.set_weights(weights[i : i + n])
            i += n

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}")

    # ----- device and compile-time resolution -----
    def set_device(self, device: str) -> None:
        ops = get_ops(device)
        self.device = device.lower()
        self.ops = ops
        for layer in self.layers:
            if layer.built:
                layer.to_backend(ops)
            else:
                layer.ops = ops
        if self.optimizer is not None and self.optimizer.slots:
            state = self.optimizer.get_state()
            self.optimizer.set_state(state, self.trainable_variables, ops)

    @property
    def output_names(self) -> list[str]:
        """The name of each output: the name of the layer that makes it (as in Keras 3)."""
        if self._graph is None:  # an unbuilt Sequential: its last layer's
            layers = getattr(self, "_layers", [])
            return [layers[-1].name] if layers else ["output"]
        return [t.node.layer.name for t in self._graph.outputs]

    def _resolve_metrics(self) -> None:
        """Each metric's concrete kind (for its output's loss and width) and, per output,
        whether the loss applies the output layer's activation itself (fused)."""
        outs = self._graph.outputs
        if len(outs) != len(self._heads):
            raise ValueError(
                f"the model was compiled for {len(self._heads)} outputs but has {len(outs)}: "
                "compile it again"
            )
        self._metrics = [
            (i, metrics_mod.resolve(kind, self._heads[i].loss.name, outs[i].shape[-1] or 1))
            for i, kind in self._metric_order()
        ]
        self._fused = [self._fusable(t, h.loss) for t, h in zip(outs, self._heads)]

    def _fusable(self, out: KerasTensor, loss) -> bool:
        """Whether the loss can apply ``out``'s activation itself: a softmax/sigmoid output
        layer with a cross-entropy, read by no other layer, not shared, and listed once among
        the model's outputs (the gradient then skips the activation's backward)."""
        last = out.node.layer
        want = _FUSABLE.get(loss.name)
        return (
            not loss.from_logits
            and want is not None
            and bool(out.node.inputs)
            and last.fuses_activation_backward
            and last.activation == want
            and not self._graph.readers[id(out)]
            and id(last) not in self._graph.shared
            and sum(t is out for t in self._graph.outputs) == 1
        )

    # ----- input checking -----
    def _build_for(self, x) -> None:
        """Build an unbuilt model for input ``x`` (a Sequential without an input shape)."""
        raise AssertionError("a functional model is built from its inputs")

    def _split_inputs(self, x, what: str) -> list:
        if self._graph is None:  # an unbuilt Sequential: one input, which builds it
            return [x]
        names = self.input_names
        if isinstance(x, dict):
            unknown = sorted(set(x) - set(names))
            missing = [n for n in names if n not in x]
            if unknown or missing:
                raise ValueError(
                    f"{what} is a dict with keys {sorted(x)}, but the model's inputs are {names}"
                )
            return [x[n] for n in names]
        if len(names) > 1:
            if not isinstance(x, (list, tuple, Inputs)) or len(x) != len(names):
                raise ValueError(
                    f"the model has {len(names)} inputs ({', '.join(names)}): give {what} as a "
                    f"list of {len(names)} arrays or a dict by input name"
                )
            return list(x.arrays if isinstance(x, Inputs) else x)
        return [x]

    def _check_x(self, x, what: str = "x"):
        if isinstance(x, Inputs):
            return x
        arrays = self._split_inputs(x, what)
        many = len(arrays) > 1
        arrays = [numeric_array(a, f"{what}[{i}]" if many else what) for i, a in enumerate(arrays)]
        if not self.built:
            if arrays[0].ndim < 2:
                raise ValueError(f"{what} must have a batch axis, got shape {arrays[0].shape}")
            self._build_for(arrays[0])
        checked = []
        for i, (t, arr) in enumerate(zip(self._graph.inputs, arrays)):
            label = f"{what}[{i}] (input {t.node.layer.name!r})" if many else what
            checked.append(model_inputs(arr, tuple(t.shape[1:]), self._consumer(t), label))
        if many and len({len(a) for a in checked}) > 1:
            raise ValueError(f"the arrays of {what} hold different numbers of samples")
        return Inputs(checked) if many else checked[0]

    def input_reader(self, index: int = 0) -> Layer:
        """The layer that reads input ``index``: a token-id layer (Embedding) if one does, so
        its ``input_dtype`` says what the input holds."""
        self._require_built()
        return self._consumer(self._graph.inputs[index])

    def _consumer(self, tensor: KerasTensor) -> Layer:
        """The layer whose input type an input tensor takes: a token-id layer if any reads it."""
        readers = [node.layer for node in self._graph.readers.get(id(tensor), [])]
        for layer in readers:
            if layer.input_dtype == "int":
                return layer
        return readers[0] if readers else tensor.node.layer

    def _check_y(self, y, n: int, what: str = "y"):
        """Targets checked per output: an array for one output, an Inputs of arrays (in output
        order) for several."""
        outs = self._graph.outputs
        if len(outs) == 1:
            if isinstance(y, (list, tuple)) and len(y) == 1 and isinstance(y[0], np.ndarray):
                y = y[0]
            elif isinstance(y, dict) and list(y) == self.output_names:
                y = y[self.output_names[0]]
            return model_targets(y, n, self.output_shape, self._heads[0].loss.name, what)
        names = self.output_names
        arrays = split_targets(y, names, what)
        return Inputs(
            [
                model_targets(a, n, tuple(t.shape[1:]), h.loss.name, f"{what}[{name!r}]")
                for a, t, h, name in zip(arrays, outs, self._heads, names)
            ]
        )

    # ----- the core steps -----
    def _to_device(self, x_host):
        if isinstance(x_host, Inputs):
            return Inputs([self.ops.asarray(a) for a in x_host.arrays])
        return self.ops.asarray(x_host)

    def _forward(self, xb, training: bool, linear=frozenset(), several: bool = False):
        """The model's output (a list of them with ``several``); the nodes in ``linear`` give
        their output before their activation (the training step's loss then applies it, fused
        with itself)."""
        graph = self._graph
        xs = xb.arrays if isinstance(xb, Inputs) else [xb]
        values = run_forward(graph, xs, training, linear)
        outs = [values[id(t)] for t in graph.outputs]
        return outs if several else outs[0]

    def _train_step(self, xb, yb, sample_weight=None):
        """One forward/backward/update (each sample's gradient scaled by its ``sample_weight``
        if given, each output's by its loss weight); returns (the outputs, each output's
        per-sample losses), on the device. Where the output layer can leave its softmax or
        sigmoid out (``forward_linear``), the loss applies it: one GPU launch for activation,
        losses and gradient."""
        ops, outputs = self.ops, self._graph.outputs
        fused = [t.node.layer.activation if f else None for t, f in zip(outputs, self._fused)]
        defer = [
            a is not None and t.node.layer.fuses_activation_forward for t, a in zip(outputs, fused)
        ]
        outs = self._forward(
            xb, True, frozenset(id(t.node) for t, d in zip(outputs, defer) if d), several=True
        )
        seeds, pers = {}, []
        ys = yb.arrays if isinstance(yb, Inputs) else [yb]
        for t, head, out, y, act, d in zip(outputs, self._heads, outs, ys, fused, defer):
            per, grad = ops.loss_and_gradient(
                head.loss.name, out, y, head.loss.from_logits, act, apply_activation=d
            )
            if sample_weight is not None:
                grad = self._weighted_gradient(grad, sample_weight)
            if head.weight != 1.0:
                ops.scale_(grad, head.weight)  # the total loss is the weighted sum
            seeds[id(t)] = grad if id(t) not in seeds else ops.add(seeds[id(t)], grad)
            pers.append(per)
        linear = frozenset(id(t.node) for t, a in zip(outputs, fused) if a)
        run_backward(self._graph, ops, seeds, linear)
        with ops.lasting_memory():  # optimizer slots and packed weights outlive the batch
            self.optimizer.apply_gradients(self.trainable_variables)
        return outs, pers

    # ----- reporting and files -----
    def flops(self) -> int:
        """Forward FLOPs (2 per multiply-add) for one sample (a shared layer once per call)."""
        self._require_built()
        return int(sum(node.layer.flops() for node in self._graph.nodes))

    def summary(self, print_fn=print) -> None:
        """Print a Keras-like table of layers, output shapes and parameter counts."""
        self._require_built()
        summary_mod.print_summary(self, print_fn)

    def get_config(self) -> dict:
        from .config import functional_config

        return functional_config(self)

    def save(self, filepath: str | os.PathLike, epoch: int | None = None) -> None:
        """Write a ``.edgemine`` file atomically: config, weights and optimizer state."""
        from ..saving import save_model

        save_model(self, filepath, epoch=epoch)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}, {len(self.layers)} layers>"
