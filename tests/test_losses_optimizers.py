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

    per, g = cpu.loss_and_gradient(name, p, y, from_logits)
    assert float(per.mean()) == f()
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

    out = z.copy()  # the activation's input; the loss applies the activation in place
    per, fused = cpu.loss_and_gradient(name, out, y, fused_activation=act, apply_activation=True)
    np.testing.assert_array_equal(out, cpu.activation_forward(act, z))
    assert float(per.mean()) == f()
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


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_decoupled_weight_decay(name):
    """Keras 3's weight_decay: each step first p -= p * weight_decay * lr, then the update."""
    lr, wd = 0.05, 0.3
    config = {"class_name": name, "learning_rate": lr, "weight_decay": wd}
    p, grads, got = _run(optimizers.get(config))
    if name == "sgd":
        for g in grads:
            p = p * (1 - lr * wd) - lr * g
        np.testing.assert_allclose(got, p, rtol=1e-5, atol=1e-6)
    zero = optimizers.get(config)
    var = Variable("w", np.ones((2, 3), np.float32))
    zero.build([var], cpu)
    var.grad = np.zeros((2, 3), np.float32)
    for _ in range(3):
        zero.apply_gradients([var])  # a zero gradient moves nothing but the decay
    np.testing.assert_allclose(var.value, np.float32(1 - lr * wd) ** 3, rtol=1e-6)
    restored = optimizers.get(zero.get_config())
    assert restored.weight_decay == wd and type(restored) is type(zero)
    with pytest.raises(ValueError, match="weight_decay must be a non-negative number"):
        optimizers.Adam(weight_decay=-1)


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


@pytest.mark.parametrize("bad", ["adamax", "", "nonsense"])
def test_unknown_optimizer_name(bad):
    with pytest.raises(ValueError, match="unknown optimizer"):
        optimizers.get(bad)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge_loss")


# ----- the flat pack: one update for every variable with a dense gradient -----
def _seed_like_models():
    from edgemine import layers as L

    cnn = [
        L.Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)),
        L.MaxPooling2D(),
        L.BatchNormalization(),
        L.Flatten(),
        L.Dense(4, activation="relu"),
        L.Dense(3, activation="softmax"),
    ]
    lstm = [
        L.Embedding(20, 4, input_length=6),
        L.LSTM(5, return_sequences=True),
        L.GRU(3),
        L.Dense(3, activation="softmax"),
    ]
    data = np.random.default_rng(4)
    x_img = data.random((12, 8, 8, 1), dtype=np.float32)
    x_ids = data.integers(0, 20, (12, 6))
    y = np.eye(3, dtype=np.float32)[data.integers(0, 3, 12)]
    return [(cnn, x_img, y), (lstm, x_ids, y)]


def _trained(build, x, y, optimizer, pack: bool, monkeypatch):
    from edgemine.models import Sequential
    from edgemine.utils import set_random_seed

    with monkeypatch.context() as m:
        if not pack:
            m.setattr(optimizers.Optimizer, "_repack", lambda self, variables: None)
        set_random_seed(7)
        model = Sequential(build())
        model.compile(optimizer=optimizer, loss="categorical_crossentropy")
        for step in range(3):
            model.train_on_batch(x[4 * step : 4 * step + 4], y[4 * step : 4 * step + 4])
    return model


@pytest.mark.parametrize(
    "optimizer",
    ["adam", "sgd", "rmsprop", {"class_name": "AdamW", "weight_decay": 0.5, "learning_rate": 0.01}],
)
@pytest.mark.parametrize("which", [0, 1], ids=["cnn", "lstm"])
def test_packed_update_equals_one_update_per_variable(optimizer, which, monkeypatch):
    """After the first step the dense-gradient variables live in one flat buffer, the layers
    write their gradients into it, and one kernel call updates them all: bit for bit what the
    per-variable updates give."""
    layers_of = lambda: _seed_like_models()[which][0]  # noqa: E731 - fresh layers per model
    _, x, y = _seed_like_models()[which]
    packed = _trained(layers_of, x, y, optimizer, True, monkeypatch)
    single = _trained(layers_of, x, y, optimizer, False, monkeypatch)
    pack = packed.optimizer._pack
    assert pack is not None and pack.ready(), "the last steps did not take the packed update"
    assert single.optimizer._pack is None
    for v in pack.variables:
        assert np.shares_memory(v.value, pack.value) and np.shares_memory(v.grad, pack.grad)
    for a, b in zip(packed.get_weights(), single.get_weights()):
        np.testing.assert_array_equal(a, b)
    state_a, state_b = packed.optimizer.get_state(), single.optimizer.get_state()
    assert state_a.keys() == state_b.keys()
    for k in state_a:
        np.testing.assert_array_equal(state_a[k], state_b[k])


@pytest.mark.parametrize("change", ["set_weights", "set_state"])
def test_set_weights_and_set_state_after_packing_take_effect(change, monkeypatch):
    """Values rebound by set_weights, and slots replaced by set_state, are used by the next
    step and packed again, not overwritten by the stale flat buffers."""
    build = lambda: _seed_like_models()[0][0]  # noqa: E731
    _, x, y = _seed_like_models()[0]
    model = _trained(build, x, y, "adam", True, monkeypatch)
    twin = _trained(build, x, y, "adam", False, monkeypatch)
    weights = [w + 0.5 for w in model.get_weights()]
    state = model.optimizer.get_state()
    state = {k: (v if k == "iterations" else v * 0.5) for k, v in state.items()}
    for m in (model, twin):
        if change == "set_weights":
            m.set_weights(weights)
        else:
            m.optimizer.set_state(state, m.trainable_variables, m.ops)
        m.train_on_batch(x[:4], y[:4])
        m.train_on_batch(x[4:8], y[4:8])
    assert model.optimizer._pack is not None and model.optimizer._pack.ready()
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)
