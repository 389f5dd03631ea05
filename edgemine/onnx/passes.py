"""Graph-level passes of the export: each node's parameters, BatchNormalization folded into the
Conv1D / Conv2D / Dense before it, and how a Keras mask travels.

Example:
    >>> from edgemine.layers import BatchNormalization, Dense, Dropout
    >>> from edgemine.models import Sequential
    >>> m = Sequential([Dense(3, input_shape=(2,)), Dropout(0.5), BatchNormalization()])
    >>> params, folded = plan(m._graph)
    >>> sorted(node.layer.name for node in m._graph.nodes if id(node) in folded)
    ['batch_normalization']
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: layers that compute nothing at inference
IDENTITY_LAYERS = frozenset({"Dropout", "InputLayer"})
#: layers a BatchNormalization after them (with a linear activation) folds into
_FOLDS_INTO = ("Conv1D", "Conv2D", "Dense")


def layer_params(layer: Any) -> dict[str, np.ndarray]:
    """The layer's weights by variable name, float32 host copies."""
    return {
        v.name: np.asarray(w, dtype=np.float32)
        for v, w in zip(layer.variables, layer.get_weights())
    }


def bn_scale_shift(layer: Any, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """BatchNormalization at inference as ``x * scale + shift`` (float64).

    Example:
        >>> from edgemine.layers import BatchNormalization
        >>> bn = BatchNormalization(epsilon=0.0 + 1e-3); bn.build((2,))
        >>> [a.round(4).tolist() for a in bn_scale_shift(bn, layer_params(bn))]
        [[0.9995, 0.9995], [0.0, 0.0]]
    """
    mean = params["moving_mean"].astype(np.float64)
    var = params["moving_variance"].astype(np.float64)
    gamma = params["gamma"].astype(np.float64) if "gamma" in params else np.ones_like(mean)
    beta = params["beta"].astype(np.float64) if "beta" in params else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + layer.epsilon)
    return scale, beta - mean * scale


def _fold_target(graph: Any, node: Any):
    """The node a BatchNormalization ``node`` folds into: the Conv2D / Dense (linear
    activation, not shared) that computes its input, through identity layers, each tensor on
    the way read by that path alone. None if there is none."""
    tensor = node.inputs[0]
    reader = node
    while True:
        if graph.single_reader(tensor) is not reader:
            return None
        below = tensor.node
        kind = type(below.layer).__name__
        if kind in IDENTITY_LAYERS and below.inputs:
            tensor, reader = below.inputs[0], below
            continue
        ok = (
            kind in _FOLDS_INTO
            and getattr(below.layer, "activation", None) == "linear"
            and id(below.layer) not in graph.shared
        )
        return below if ok else None


def plan(graph: Any) -> tuple[dict[int, dict[str, np.ndarray]], set[int]]:
    """(node id -> the parameters its converter uses, ids of BatchNormalization nodes folded
    into the Conv2D / Dense before them; those convert to nothing)."""
    params: dict[int, dict[str, np.ndarray]] = {}
    folded: set[int] = set()
    for node in graph.nodes:
        layer = node.layer
        params[id(node)] = {} if type(layer).__name__ in IDENTITY_LAYERS else layer_params(layer)
        if type(layer).__name__ != "BatchNormalization":
            continue
        target = _fold_target(graph, node)
        if target is None or id(target) in folded:
            continue
        scale, shift = bn_scale_shift(layer, params[id(node)])
        prev = dict(params[id(target)])
        bias = prev.get("bias")
        bias = np.zeros_like(scale) if bias is None else bias.astype(np.float64)
        prev["kernel"] = (prev["kernel"].astype(np.float64) * scale).astype(np.float32)
        prev["bias"] = (bias * scale + shift).astype(np.float32)  # last axis = outputs
        params[id(target)] = prev
        folded.add(id(node))
    return params, folded


_MASK = object()


def next_mask(layer: Any, mask: Any, error) -> Any:
    """The mask after ``layer``, as the engine computes it: a layer passes the mask on only if
    its ``compute_mask`` returns the mask it gets (recurrent layers with return_sequences);
    layers without ``compute_mask`` end it. ``error(layer, message)`` makes the exception."""
    if mask is None:
        return None
    compute_mask = getattr(layer, "compute_mask", None)
    if compute_mask is None:
        return None
    try:
        out = compute_mask(None, [_MASK] if layer.multi_input else _MASK)
    except Exception as e:
        raise error(layer, f"cannot tell how it propagates a mask ({e})") from None
    if out is _MASK:
        return mask
    if out is None:
        return None
    raise error(layer, "changes the mask in a way the exporter does not know")
