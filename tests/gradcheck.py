"""Central finite-difference gradient checks in float64, shared by the layer tests."""

from __future__ import annotations

import numpy as np


def to_float64(layer) -> None:
    for var in layer.variables:
        var.value = np.ascontiguousarray(var.value, dtype=np.float64)


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
) -> None:
    """Compare layer.backward with central differences of sum(forward(x) * g)."""
    rng = np.random.default_rng(seed)
    if not layer.built:
        layer.build(x.shape[1:])
    to_float64(layer)
    x = np.ascontiguousarray(x, dtype=np.float64) if x.dtype.kind == "f" else x
    y = layer.forward(x, training=training)
    g = rng.standard_normal(np.shape(y))

    def loss():
        return float(np.sum(layer.forward(x, training=training) * g))

    layer.forward(x, training=training)
    dx = layer.backward(g.copy())
    analytic = [(v.name, v.value, v.grad) for v in layer.trainable_variables]
    if check_input and x.dtype.kind == "f":
        analytic.append(("input", x, dx))
    for name, arr, grad in analytic:
        assert grad is not None, f"no gradient for {name}"
        if hasattr(grad, "rows"):  # SparseGradient
            dense = np.zeros(grad.shape)
            dense[grad.rows] = grad.values
            grad = dense
        grad = np.asarray(grad).reshape(-1)
        idx = rng.choice(arr.size, size=min(samples, arr.size), replace=False)
        num = numeric_grad(loss, arr, idx)
        np.testing.assert_allclose(grad[idx], num, rtol=rtol, atol=atol, err_msg=name)
