"""A functional model's config (Keras's layout: each layer with its ``inbound_nodes``) and the
model rebuilt from one.

Each layer entry lists, per call of the layer in the model (its nodes, in the model's order),
the tensors that call reads as ``[layer name, node index]``; ``input_layers`` and
``output_layers`` name the model's inputs and outputs the same way.

>>> from edgemine.layers import Add, Dense, Input
>>> from edgemine.models import Model
>>> x = Input(shape=(2,), name="x")
>>> d = Dense(2, name="d")
>>> config = functional_config(Model(x, Add(name="sum")([d(x), x])))
>>> [(e["config"]["name"], e["inbound_nodes"]) for e in config["layers"]]
[('x', []), ('d', [[['x', 0]]]), ('sum', [[['d', 0], ['x', 0]]])]
"""

from __future__ import annotations

from typing import Any

from .graph import Graph, KerasTensor, call_symbolic


def _node_indices(graph: Graph) -> dict[int, tuple[str, int]]:
    """node id -> (layer name, index of the node among the layer's nodes in the model)."""
    counts: dict[int, int] = {}
    out = {}
    for node in graph.nodes:
        k = counts.get(id(node.layer), 0)
        counts[id(node.layer)] = k + 1
        out[id(node)] = (node.layer.name, k)
    return out


def functional_config(model) -> dict:
    """The config of a functional ``model`` (see the module docstring)."""
    graph = model._graph
    where = _node_indices(graph)
    inbound: dict[int, list] = {id(layer): [] for layer in graph.layers}
    for node in graph.nodes:
        if node.inputs:
            inbound[id(node.layer)].append([list(where[id(t.node)]) for t in node.inputs])
    return {
        "name": model.name,
        "layers": [
            {
                "class_name": type(layer).__name__,
                "config": layer.get_config(),
                "inbound_nodes": inbound[id(layer)],
            }
            for layer in graph.layers
        ],
        "input_layers": [list(where[id(t.node)]) for t in graph.inputs],
        "output_layers": [list(where[id(t.node)]) for t in graph.outputs],
    }


def rebuild_graph(
    layers: dict[str, Any], inbound: dict[str, list], inputs: list, outputs: list
) -> tuple[list[KerasTensor], list[KerasTensor]]:
    """Call the (unbuilt) ``layers`` by name on each other as ``inbound`` says; returns the
    model's input and output tensors. A node whose sources are not made yet waits for them,
    so the entries may come in any order; a reference to nothing raises ValueError."""
    made: dict[tuple[str, int], KerasTensor] = {}
    for name, layer in layers.items():
        if type(layer).__name__ == "InputLayer":
            made[(name, 0)] = layer.output
    pending = [(name, k, refs) for name, calls in inbound.items() for k, refs in enumerate(calls)]
    while pending:
        waiting = []
        for name, k, refs in pending:
            keys = [(str(r[0]), int(r[1])) for r in refs]
            if not all(key in made for key in keys):
                waiting.append((name, k, refs))
                continue
            sources = [made[key] for key in keys]
            layer = layers[name]
            made[(name, k)] = call_symbolic(layer, sources if layer.multi_input else sources[0])
        if len(waiting) == len(pending):
            missing = sorted({tuple(r) for _, _, refs in waiting for r in refs} - set(made))
            raise ValueError(f"the layer graph refers to tensors no layer makes: {missing[:3]}")
        pending = waiting

    def find(ref, what: str) -> KerasTensor:
        key = (str(ref[0]), int(ref[1]))
        if key not in made:
            raise ValueError(f"{what} {ref!r} is not a tensor of the graph")
        return made[key]

    return [find(r, "input") for r in inputs], [find(r, "output") for r in outputs]
