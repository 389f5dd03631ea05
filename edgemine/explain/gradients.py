"""Gradients of one model output with respect to a layer's input, through the layers' own
backward passes (the ones training uses): no autograd and no second implementation.

The forward pass runs in inference mode as far as the output goes (Dropout passes its input,
BatchNormalization uses its moving statistics, recurrent dropout is off), but keeps what the
backward passes need (convolutions keep their columns, recurrent layers their caches). Weights,
their gradients and the optimizer's buffers are left as they were.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..layers.core import Dropout, InputLayer
from ..layers.normalization import BatchNormalization

#: layers that behave differently in training: run in inference mode (their backward passes
#: then follow the inference function: identity, or a scale by the moving statistics)
_INFERENCE_ONLY = (Dropout, BatchNormalization)
_RNN_DROPOUTS = ("dropout", "recurrent_dropout")


def chain(model) -> list:
    """The computing layers of a Sequential model in order (its Input left out); other models
    are refused: the explanations follow one chain of layers."""
    if not getattr(model, "is_chain", False):
        raise ValueError(
            f"explanations need a Sequential model; {model.name!r} is a {type(model).__name__} "
            "with a layer graph"
        )
    return [layer for layer in model.layers if not isinstance(layer, InputLayer)]


def _sublayers(model):
    for layer in chain(model):
        yield layer
        yield from getattr(layer, "layers", ())  # Bidirectional's two directions


@contextlib.contextmanager
def explaining(model, start: int):
    """Inside: layer ``start`` passes a gradient to its input, recurrent dropout is 0 and
    no gradient reaches the optimizer's buffers. Everything is restored on exit."""
    first = chain(model)[start]
    saved_flag = first.need_input_grad
    dropouts = [
        (layer, name, getattr(layer, name))
        for layer in _sublayers(model)
        for name in _RNN_DROPOUTS
        if isinstance(getattr(layer, name, None), float)
    ]
    grads = [(v, v.grad, v.grad_out) for v in model.variables]
    try:
        first.need_input_grad = True
        for layer, name, _ in dropouts:
            setattr(layer, name, 0.0)
        for v, _, _ in grads:
            v.grad_out = None
        yield
    finally:
        first.need_input_grad = saved_flag
        for layer, name, value in dropouts:
            setattr(layer, name, value)
        for v, grad, grad_out in grads:
            v.grad, v.grad_out = grad, grad_out


def forward_backward(model, x: np.ndarray, target: int, start: int = 0, mask=None):
    """(outputs (n, k), d outputs[:, target] / d x) where ``x`` is the input of layer ``start``
    (the model's input for 0; the embeddings for 1 after an Embedding, whose ``mask`` then
    comes with them). Call inside :func:`explaining`."""
    ops = model.ops
    layers = chain(model)[start:]
    with ops.batch_memory():
        out = ops.asarray(x)
        mask = None if mask is None else ops.asarray(mask)
        for layer in layers:
            training = not isinstance(layer, _INFERENCE_ONLY)
            if mask is not None and getattr(layer, "supports_masking", False):
                y = layer.forward(out, training=training, mask=mask)
            else:
                y = layer.forward(out, training=training)
            compute_mask = getattr(layer, "compute_mask", None)
            mask = None if compute_mask is None else compute_mask(out, mask)
            out = y
        outputs = np.asarray(ops.to_numpy(out), dtype=np.float64).reshape(len(x), -1)
        seed = np.zeros(outputs.shape, np.float32)
        seed[:, target] = 1.0
        d = ops.asarray(seed.reshape(tuple(out.shape)))
        for layer in reversed(layers):
            d = layer.backward(d)
        return outputs, np.asarray(ops.to_numpy(d), dtype=np.float64)
