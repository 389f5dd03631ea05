"""Loss values and gradients, and optimizer steps against their published update rules."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import numeric_grad

from edgemine import losses, optimizers
from edgemine.kernels import cpu
from edgemine.layers import Variable

rng = np.random.default_rng(0)


def _probs(n, k):
    z = rng.standard_normal((n, k))
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


@pytest.mark.parametrize(
    "name,from_logits",
    [
        (n, f)
        for n in (
            "categorical_crossentropy",
            "sparse_categorical_crossentropy",
            "binary_crossentropy",
            "mean_squared_error",
        )
        for f in (False, True)
    ],
)
def test_loss_gradient_matches_finite_differences(name, from_logits):
    n, k = 4, 5
    if name == "sparse_categorical_crossentropy":
        y = rng.integers(0, k, (n, 1))
    elif name == "categorical_crossentropy":
        y = np.eye(k)[rng.integers(0, k, n)]
    else:
        y = rng.random((n, k))
    p = (
        rng.standard_normal((n, k))
        if from_logits or name == "mean_squared_error"
        else (_probs(n, k) if "categorical" in name else rng.random((n, k)) * 0.9 + 0.05)
    )
    if name == "mean_squared_error" and from_logits:
        pytest.skip("from_logits has no meaning for MSE")

    def f():
        return float(cpu.loss_forward(name, p, y, from_logits).mean())

    g = cpu.loss_gradient(name, p, y, from_logits)
    idx = np.arange(p.size)
    np.testing.assert_allclose(g.reshape(-1), numeric_grad(f, p, idx), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "name,act",
    [
        ("categorical_crossentropy", "softmax"),
        ("sparse_categorical_crossentropy", "softmax"),
        ("binary_crossentropy", "sigmoid"),
    ],
)
def test_fused_gradient_is_the_gradient_through_the_activation(name, act):
    n, k = 3, 4
    z = rng.standard_normal((n, k))
    y = (
        rng.integers(0, k, (n, 1))
        if name.startswith("sparse")
        else (np.eye(k)[rng.integers(0, k, n)] if name.startswith("cat") else rng.random((n, k)))
    )

    def f():
        return float(cpu.loss_forward(name, cpu.activation_forward(act, z), y).mean())

    fused = cpu.loss_gradient(name, cpu.activation_forward(act, z), y, fused_activation=act)
    np.testing.assert_allclose(
        fused.reshape(-1), numeric_grad(f, z, np.arange(z.size)), rtol=1e-5, atol=1e-8
    )


def test_loss_values_match_keras_formulas():
    y = np.array([[0, 1, 0], [1, 0, 0]], dtype=float)
    p = np.array([[0.1, 0.8, 0.1], [0.5, 0.25, 0.25]])
    expect = -(np.log(0.8) + np.log(0.5)) / 2
    assert losses.get("categorical_crossentropy")(y, p) == pytest.approx(expect)
    assert losses.get("sparse_categorical_crossentropy")([1, 0], p) == pytest.approx(expect)
    assert losses.get("mse")(y, p) == pytest.approx(((y - p) ** 2).mean())
    b = losses.get("binary_crossentropy")(np.array([[1.0], [0.0]]), np.array([[0.9], [0.2]]))
    assert b == pytest.approx(-(np.log(0.9) + np.log(0.8)) / 2)


def _run(opt, steps=4, sparse=False):
    p0 = rng.standard_normal((5, 3)).astype(np.float32)
    grads = [rng.standard_normal((5, 3)).astype(np.float32) for _ in range(steps)]
    var = Variable("w", p0.copy())
    opt.build([var], cpu)
    for g in grads:
        var.grad = g
        opt.apply_gradients([var])
    return p0.astype(np.float64), grads, var.value


def test_sgd_momentum_and_nesterov_rules():
    for nesterov in (False, True):
        p, grads, got = _run(optimizers.SGD(0.1, momentum=0.9, nesterov=nesterov))
        v = np.zeros_like(p)
        for g in grads:
            v = 0.9 * v - 0.1 * g
            p = p + (0.9 * v - 0.1 * g if nesterov else v)
        np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6)
    p, grads, got = _run(optimizers.get("sgd"))
    for g in grads:
        p = p - 0.01 * g
    np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6)


def test_adam_rule():
    p, grads, got = _run(optimizers.Adam(0.01))
    m = v = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        lr_t = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        p = p - lr_t * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("centered,momentum", [(False, 0.0), (True, 0.0), (False, 0.5)])
def test_rmsprop_rule(centered, momentum):
    p, grads, got = _run(optimizers.RMSprop(0.01, momentum=momentum, centered=centered))
    ms = mg = mom = np.zeros_like(p)
    for g in grads:
        ms = 0.9 * ms + 0.1 * g * g
        denom = ms + 1e-7
        if centered:
            mg = 0.9 * mg + 0.1 * g
            denom = denom - mg * mg
        step = 0.01 * g / np.sqrt(denom)
        if momentum:
            mom = momentum * mom + step
            step = mom
        p = p - step
    np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6)


def test_keras_defaults():
    assert optimizers.get("adam").get_config() == {
        "class_name": "Adam",
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-7,
    }
    assert optimizers.get("sgd").learning_rate == 0.01
    assert optimizers.get("rmsprop").rho == 0.9


def test_optimizer_state_round_trip():
    opt = optimizers.Adam()
    _, _, _ = _run(opt)
    state = opt.get_state()
    other = optimizers.Adam()
    var = Variable("w", np.zeros((5, 3), np.float32))
    other.set_state(state, [var], cpu)
    assert other.iterations == opt.iterations
    np.testing.assert_array_equal(other.slots[0]["m"], opt.slots[0]["m"])


@pytest.mark.parametrize("bad", ["adamw", "", "nonsense"])
def test_unknown_optimizer_name(bad):
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get(bad)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge_loss")
