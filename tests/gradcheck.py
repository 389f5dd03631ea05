"""Central finite-difference gradient checks in float64, shared by the layer tests and the
layer harness (tests/layer_harness.py)."""

from __future__ import annotations

import numpy as np


def to_float64(layer) -> None:
    for var in layer.variables:
        var.value = np.ascontiguousarray(var.value, dtype=np.float64)


def sublayers(layer) -> tuple:
    """The layer and the layers it holds (Bidirectional's two recurrent layers)."""
    return (layer, *getattr(layer, "layers", ()))


def reseed(layer, seed: int) -> None:
    """Give every layer that draws dropout masks a fresh generator: the same masks again."""
    for sub in sublayers(layer):
        if hasattr(sub, "_rng"):
            sub._rng = np.random.default_rng(seed)


def dense_gradient(grad) -> np.ndarray:
    """A gradient as a host array (a row-sparse one scattered into zeros)."""
    if hasattr(grad, "rows"):  # SparseGradient
        rows, values = np.asarray(_host(grad.rows)), np.asarray(_host(grad.values))
        dense = np.zeros(grad.shape, dtype=values.dtype)
        dense[rows] = values
        return dense
    return np.asarray(_host(grad))


def _host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else a


def numeric_grad(f, arr: np.ndarray, indices, eps: float = 1e-6) -> np.ndarray:
    flat = arr.reshape(-1)
    out = np.empty(len(indices))
    for k, i in enumerate(indices):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        out[k] = (plus - minus) / (2 * eps)
    return out


def check_layer(
    layer,
    x: np.ndarray,
    training: bool = True,
    samples: int = 25,
    seed: int = 0,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    check_input: bool = True,
    mask: np.ndarray | None = None,
) -> None:
    """Compare layer.backward with central differences of sum(forward(x) * g) for the input
    (float inputs, unless ``check_input`` is False) and every trainable weight, at ``samples``
    random elements of each. Seeded layers draw the same dropout masks in every forward pass;
    ``mask`` is passed to forward (layers with ``supports_masking``)."""
    rng = np.random.default_rng(seed)
    many = isinstance(x, list)  # a merge layer's inputs
    xs = [
        np.ascontiguousarray(a, dtype=np.float64) if a.dtype.kind == "f" else a
        for a in (x if many else [x])
    ]
    if not layer.built:
        layer.build([a.shape[1:] for a in xs] if many else xs[0].shape[1:])
    to_float64(layer)
    x = xs if many else xs[0]
    kwargs = {} if mask is None else {"mask": mask}

    def forward():
        reseed(layer, seed)
        return layer.forward(x, training=training, **kwargs)

    g = rng.standard_normal(np.shape(forward()))

    def loss():
        return float(np.sum(forward() * g))

    forward()
    dx = layer.backward(g.copy())
    analytic = [(v.name, v.value, v.grad) for v in layer.trainable_variables]
    dxs = dx if many else [dx]
    for k, (a, d) in enumerate(zip(xs, dxs)):
        if check_input and a.dtype.kind == "f":
            analytic.append((f"input {k}", a, d))
    for name, arr, grad in analytic:
        assert grad is not None, f"no gradient for {name}"
        grad = dense_gradient(grad).reshape(-1)
        idx = rng.choice(arr.size, size=min(samples, arr.size), replace=False)
        num = numeric_grad(loss, arr, idx)
        np.testing.assert_allclose(grad[idx], num, rtol=rtol, atol=atol, err_msg=name)
