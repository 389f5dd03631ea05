"""``model.summary()``: Keras's table of layers, output shapes and parameter counts (with the
"Connected to" column of a functional model).

>>> from edgemine.layers import Dense, Input
>>> from edgemine.models import Sequential
>>> Sequential([Input(shape=(3,)), Dense(2, name="out")]).summary()  # doctest: +ELLIPSIS
Model: "sequential"
...
out (Dense)            (None, 2)           8
...
"""

from __future__ import annotations

import math


def _shape(shape) -> str:
    return "(None, " + ", ".join(str(d) for d in shape) + ")"


def _rows(model, connected: bool) -> list[tuple[str, ...]]:
    if not connected:
        return [
            (
                f"{layer.name} ({type(layer).__name__})",
                _shape(layer.output_shape),
                f"{layer.count_params():,}",
            )
            for layer in model.layers
        ]
    rows = []
    counted: set[int] = set()
    for node in model._graph.nodes:
        layer = node.layer
        params = 0 if id(layer) in counted else layer.count_params()
        counted.add(id(layer))
        sources = ", ".join(t.node.layer.name for t in node.inputs) or "-"
        rows.append(
            (
                f"{layer.name} ({type(layer).__name__})",
                _shape(node.output.shape[1:]),
                f"{params:,}",
                sources,
            )
        )
    return rows


def print_summary(model, print_fn=print) -> None:
    """Print ``model``'s summary through ``print_fn``."""
    connected = not getattr(model, "is_chain", False)
    header = ("Layer (type)", "Output Shape", "Param #") + (("Connected to",) if connected else ())
    rows = [header, *_rows(model, connected)]
    w0 = max(len(r[0]) for r in rows) + 2
    w1 = max(len(r[1]) for r in rows) + 2
    width = w0 + w1 + 12 + (max(len(r[3]) for r in rows) + 2 if connected else 0)

    def line(r):
        text = f"{r[0]:<{w0}}{r[1]:<{w1}}{r[2]:>10}"
        return text + f"  {r[3]}" if connected else text

    print_fn(f'Model: "{model.name}"')
    print_fn("_" * width)
    print_fn(line(rows[0]))
    print_fn("=" * width)
    for r in rows[1:]:
        print_fn(line(r))
    print_fn("=" * width)
    total = model.count_params()
    trainable = sum(math.prod(v.shape) for v in model.trainable_variables)
    print_fn(f"Total params: {total:,} ({total * 4 / 1024:.2f} KB)")
    print_fn(f"Trainable params: {trainable:,}")
    print_fn(f"Non-trainable params: {total - trainable:,}")
    print_fn(f"Forward FLOPs per sample: {model.flops():,}")
    print_fn("_" * width)
