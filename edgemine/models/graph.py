"""The layer graph of a model: symbolic tensors, nodes, and running them forward and backward.

``keras.Input`` makes a :class:`KerasTensor`; calling a layer on KerasTensors records a
:class:`Node` (the layer, its input tensors, its output tensor) and returns the output's
KerasTensor. :class:`Graph` walks back from a model's outputs to its inputs, orders the nodes
topologically, and runs them: forward in order, backward in reverse, adding up the gradients of
a tensor that several nodes read. A ``Sequential`` model is the graph of one chain.

A layer keeps in ``forward`` what its ``backward`` needs (the layer contract). A layer called at
several nodes (a shared layer) therefore has its cached attributes saved after each node's
forward and put back before that node's backward, and its weight gradients added up over the
nodes.

>>> from edgemine.layers import Dense, Input
>>> x = Input(shape=(3,))
>>> y = Dense(2)(x)
>>> y.shape
(None, 2)
>>> [type(n.layer).__name__ for n in Graph([x], [y]).nodes]
['InputLayer', 'Dense']
"""

from __future__ import annotations

import functools
from typing import Any

from ..layers.base import SparseGradient


class KerasTensor:
    """A symbolic tensor: the shape (batch axis first, None) and dtype of a value a model will
    compute, and the node that computes it.

    Arithmetic between KerasTensors builds merge layers, as in Keras: ``a + b`` is
    ``Add()([a, b])``, ``a - b`` ``Subtract``, ``a * b`` ``Multiply``.
    """

    __slots__ = ("shape", "dtype", "node", "name")

    def __init__(self, shape: tuple, dtype: str = "float32", node: Node | None = None, name=""):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.node = node
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def _merge(self, other: Any, kind: str, swap: bool = False):
        from ..layers import merge

        if not isinstance(other, KerasTensor):
            raise TypeError(
                f"{kind} of a KerasTensor and a {type(other).__name__}: only two KerasTensors "
                f"combine (use edgemine.layers.{kind}()([a, b]))"
            )
        pair = [other, self] if swap else [self, other]
        return getattr(merge, kind)()(pair)

    def __add__(self, other):
        return self._merge(other, "Add")

    def __sub__(self, other):
        return self._merge(other, "Subtract")

    def __mul__(self, other):
        return self._merge(other, "Multiply")

    def __radd__(self, other):
        return self._merge(other, "Add", swap=True)

    def __rmul__(self, other):
        return self._merge(other, "Multiply", swap=True)

    def __rsub__(self, other):
        return self._merge(other, "Subtract", swap=True)

    def __bool__(self) -> bool:
        raise TypeError("a KerasTensor has no value yet: it cannot be used as a condition")

    __hash__ = object.__hash__


class Node:
    """One call of a layer: the tensors it reads and the tensor it makes."""

    __slots__ = ("layer", "inputs", "output", "saved")

    def __init__(self, layer, inputs: list[KerasTensor], output: KerasTensor):
        self.layer = layer
        self.inputs = inputs
        self.output = output
        self.saved: list | None = None  # a shared layer's cached attributes after this forward

    def __repr__(self) -> str:
        return f"<Node {self.layer.name}>"


def symbolic(value: Any) -> bool:
    """Is ``value`` a KerasTensor or a non-empty list / tuple of them?"""
    if isinstance(value, KerasTensor):
        return True
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(v, KerasTensor) for v in value)
    )


def call_symbolic(layer, inputs) -> KerasTensor:
    """Record ``layer`` called on KerasTensor(s) ``inputs`` (building it on first use) and
    return its output tensor."""
    many = isinstance(inputs, (list, tuple))
    tensors = list(inputs) if many else [inputs]
    if layer.multi_input != many:
        if layer.multi_input:
            raise TypeError(f"layer {layer.name!r} merges a list of tensors, got one tensor")
        raise TypeError(
            f"layer {layer.name!r} takes one tensor, got a list of {len(tensors)} "
            "(merge them first, e.g. with edgemine.layers.Concatenate)"
        )
    for t in tensors:
        if t.node is None:
            raise ValueError(f"{t!r} was not made by keras.Input or a layer call")
    shapes = [t.shape[1:] for t in tensors]
    shape = shapes if many else shapes[0]
    if not layer.built:
        layer.build(shape)
    elif _plain(layer.input_shape) != _plain(shape):
        raise ValueError(
            f"layer {layer.name!r} was built for input {layer.input_shape} and cannot also take "
            f"{shape} (a shared layer takes one input shape)"
        )
    dtype = "float32"
    if getattr(layer, "output_dtype", None):
        dtype = layer.output_dtype
    out = KerasTensor((None, *layer.output_shape), dtype, name=layer.name)
    node = Node(layer, tensors, out)
    out.node = node
    layer.inbound_nodes.append(node)
    return out


def _plain(shape) -> Any:
    if isinstance(shape, list):
        return [tuple(s) for s in shape]
    return tuple(shape)


class Graph:
    """The nodes between ``inputs`` and ``outputs`` in topological order, with what running them
    needs: each tensor's readers, which node applies which fusion, which layers are shared."""

    def __init__(self, inputs: list[KerasTensor], outputs: list[KerasTensor]):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        for t in [*self.inputs, *self.outputs]:
            if not isinstance(t, KerasTensor):
                raise TypeError(
                    f"a model's inputs and outputs must be KerasTensors (from keras.Input and "
                    f"layer calls), got {type(t).__name__}"
                )
        for t in self.inputs:
            if t.node is None or type(t.node.layer).__name__ != "InputLayer":
                raise ValueError(f"model input {t!r} does not come from keras.Input")
        if len({id(t) for t in self.inputs}) != len(self.inputs):
            raise ValueError("the same input tensor is given twice")
        self.nodes = self._ordered()
        self.readers: dict[int, list[Node]] = {id(t): [] for t in self.inputs}
        for node in self.nodes:
            self.readers.setdefault(id(node.output), [])
            for t in node.inputs:
                self.readers[id(t)].append(node)
        layer_nodes: dict[int, int] = {}
        for node in self.nodes:
            layer_nodes[id(node.layer)] = layer_nodes.get(id(node.layer), 0) + 1
        self.shared = {i for i, n in layer_nodes.items() if n > 1}
        self.layers = list({id(n.layer): n.layer for n in self.nodes}.values())

    def _ordered(self) -> list[Node]:
        """Depth-first from the outputs: every node after the nodes it reads from."""
        inputs = {id(t) for t in self.inputs}
        order: list[Node] = []
        done: set[int] = set()
        active: set[int] = set()
        stack: list[tuple[KerasTensor, bool]] = [(t, False) for t in reversed(self.outputs)]
        while stack:
            tensor, expanded = stack.pop()
            node = tensor.node
            if id(node) in done:
                continue
            if expanded:
                active.discard(id(node))
                done.add(id(node))
                order.append(node)
                continue
            if id(tensor) not in inputs and type(node.layer).__name__ == "InputLayer":
                raise ValueError(
                    f"graph disconnected: the outputs depend on input {tensor.name!r}, which is "
                    "not among the model's inputs"
                )
            if id(node) in active:
                raise ValueError(f"the graph has a cycle through layer {node.layer.name!r}")
            active.add(id(node))
            stack.append((tensor, True))
            if id(tensor) not in inputs:
                stack.extend((t, False) for t in reversed(node.inputs))
        return order

    # ----- fusions -----
    def single_reader(self, tensor: KerasTensor) -> Node | None:
        """The one node that reads ``tensor``, if it is read once and is not a model output."""
        readers = self.readers.get(id(tensor), [])
        if len(readers) != 1 or any(tensor is t for t in self.outputs):
            return None
        return readers[0]

    def absorbing(self) -> dict[int, Node]:
        """node id -> the node whose activation backward it applies (``absorbs_activation_below``
        of the layer; the node below then runs ``backward_linear``)."""
        out = {}
        for node in self.nodes:
            layer = node.layer
            if not layer.absorbs_activation_below or len(node.inputs) != 1:
                continue
            below = node.inputs[0].node
            if (
                below.layer.fuses_activation_backward
                and below.layer.activation in layer.absorbs_activation_below
                and self.single_reader(node.inputs[0]) is node
                and id(below.layer) not in self.shared
                and id(layer) not in self.shared
            ):
                out[id(node)] = below
        return out

    def deferring(self) -> dict[int, Node]:
        """The pairs of ``absorbing`` where the forward fuses too: node id -> the node below,
        which runs ``forward_raw`` (no bias, no activation) while this one runs
        ``forward_after`` and applies them to its smaller output (a max pooling after a ReLU
        convolution)."""
        absorbing = self.absorbing()
        out = {}
        for node in self.nodes:
            below = absorbing.get(id(node))
            if (
                below is not None
                and below.layer.defers_bias_activation
                and below.layer.activation in node.layer.applies_bias_activation_below
            ):
                out[id(node)] = below
        return out

    def corners(self) -> dict[int, tuple[int, int]]:
        """node id -> (rows, cols): nodes whose output is read by one layer that reads only that
        top-left part of it (``input_corner_read``); they compute only that (``corner=``)."""
        out = {}
        for node in self.nodes:
            layer = node.layer
            if not layer.computes_corner or id(layer) in self.shared:
                continue
            reader = self.single_reader(node.output)
            if reader is None or reader.layer.multi_input or id(reader.layer) in self.shared:
                continue
            corner = reader.layer.input_corner_read(tuple(node.output.shape[1:]))
            if corner is not None:
                out[id(node)] = corner
        return out


# ------------------------------------------------------------------------------ running


def _state(layer) -> list[tuple[Any, dict]]:
    """The attributes of ``layer`` and of the layers it wraps, copied (one level deep)."""
    inner = [*getattr(layer, "layers", ()), getattr(layer, "layer", None)]
    return [(obj, dict(vars(obj))) for obj in [layer, *inner] if obj is not None]


def _restore(saved: list[tuple[Any, dict]]) -> None:
    for obj, attrs in saved:
        vars(obj).update(attrs)


def run_forward(graph: Graph, xs: list, training: bool, linear_outputs=frozenset()) -> dict:
    """Run every node; returns tensor id -> value. ``linear_outputs``: ids of nodes that run
    ``forward_linear`` (the loss applies their activation)."""
    values: dict[int, Any] = {}
    masks: dict[int, Any] = {}
    for t, x in zip(graph.inputs, xs):
        values[id(t)] = x
        masks[id(t)] = None
    deferring = graph.deferring()
    raw = {id(below) for below in deferring.values()}
    corners = graph.corners()
    for node in graph.nodes:
        layer = node.layer
        if not node.inputs:  # an InputLayer: its value was set above
            continue
        xs_in = [values[id(t)] for t in node.inputs]
        ms_in = [masks[id(t)] for t in node.inputs]
        x = xs_in if layer.multi_input else xs_in[0]
        mask = ms_in if layer.multi_input else ms_in[0]
        forward = layer.forward_linear if id(node) in linear_outputs else layer.forward
        if id(node) in raw:
            forward = layer.forward_raw
        elif id(node) in deferring:
            forward = functools.partial(layer.forward_after, below=deferring[id(node)].layer)
        if id(node) in corners:
            forward = functools.partial(forward, corner=corners[id(node)])
        if layer.supports_masking and (
            any(m is not None for m in ms_in) if layer.multi_input else mask is not None
        ):
            y = forward(x, training=training, mask=mask)
        else:
            y = forward(x, training=training)
        values[id(node.output)] = y
        masks[id(node.output)] = layer.compute_mask(x, mask)
        if training and id(layer) in graph.shared:
            node.saved = _state(layer)
    return values


def run_backward(graph: Graph, ops, seeds: dict[int, Any], linear: frozenset = frozenset()):
    """Backpropagate ``seeds`` (output tensor id -> gradient) through the graph after a
    training forward. ``linear``: ids of nodes whose activation the loss already applied."""
    grads = dict(seeds)
    absorbing = graph.absorbing()
    linear = set(linear)
    shared_grads: dict[int, list] = {}
    for node in reversed(graph.nodes):
        if not node.inputs:
            continue
        d = grads.pop(id(node.output), None)
        if d is None:  # nothing downstream of this node reaches a loss
            continue
        layer = node.layer
        if id(layer) in graph.shared:
            dxs = _shared_backward(layer, node, d, shared_grads)
        elif id(node) in absorbing:
            below = absorbing[id(node)]
            dxs = layer.backward_through_activation(below.layer.activation, d)
            linear.add(id(below))
        elif id(node) in linear:
            dxs = layer.backward_linear(d)
        else:
            dxs = layer.backward(d)
        if not layer.multi_input:
            dxs = [dxs]
        for t, dx in zip(node.inputs, dxs):
            if dx is None or t.node.layer is None or not t.node.inputs:
                continue  # token ids, or a model input: no gradient needed
            key = id(t)
            grads[key] = dx if key not in grads else ops.add(grads[key], dx)
    for variables, per_node in shared_grads.values():
        for k, var in enumerate(variables):
            total = None
            for node_grads in per_node:
                g = _dense(ops, var, node_grads[k])
                if g is not None:
                    total = g if total is None else ops.add(total, g)
            var.grad = total


def _shared_backward(layer, node: Node, d, shared_grads: dict) -> Any:
    """Backward of one node of a shared layer: its cached attributes put back, its weight
    gradients kept aside (``shared_grads``) to be added up over the layer's nodes."""
    _restore(node.saved)
    variables = layer.trainable_variables
    outs = [v.grad_out for v in variables]
    for v in variables:
        v.grad_out = None  # the gradient of each node into a fresh array
    try:
        dxs = layer.backward(d)
    finally:
        for v, out in zip(variables, outs):
            v.grad_out = out
    entry = shared_grads.setdefault(id(layer), (variables, []))
    entry[1].append([v.grad for v in variables])
    return dxs


def _dense(ops, var, g):
    """``g`` as a dense array (a row-sparse gradient scattered into zeros)."""
    if isinstance(g, SparseGradient):
        dense = ops.zeros_like(var.value)
        ops.scatter_rows(dense, g.rows, g.values)
        return dense
    return g
