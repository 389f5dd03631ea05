"""LSTM, GRU, SimpleRNN and Bidirectional: Keras's equations, layouts, masking, gradients,
saving and errors. Gradients are checked by central differences in float64."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gradcheck import check_layer
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemine.kernels.cpu import recurrent as rnn_kernels
from edgemine.layers import (
    GRU,
    LAYER_REGISTRY,
    LSTM,
    Bidirectional,
    Dense,
    Embedding,
    SimpleRNN,
)
from edgemine.models import Sequential, load_model

CELLS = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}
REPO = Path(__file__).resolve().parents[1]


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


@pytest.fixture(params=["sgemm", "fused", "stepwise"])
def stepwise(request, monkeypatch):
    """Run a test through every recurrence path: one jitted call per sequence that calls
    OpenBLAS's sgemm per step (float32 LSTMs, where numpy's OpenBLAS is found), the same with
    the kernels' own loop product (small batches), and a numpy product per step. With sgemm the
    kernels project the input in blocks of a few steps, the last one shorter."""
    if request.param == "sgemm" and not rnn_kernels.USE_SGEMM:
        pytest.skip("numpy's OpenBLAS sgemm was not found")
    monkeypatch.setattr(rnn_kernels, "USE_SGEMM", request.param == "sgemm")
    monkeypatch.setattr(rnn_kernels, "SGEMM_MIN_ROWS", 1)
    monkeypatch.setattr(rnn_kernels, "PROJECTION_BLOCK_ROWS", 10)
    monkeypatch.setattr(
        rnn_kernels, "STEPWISE_MIN_BATCH", 1 if request.param == "stepwise" else 10**9
    )
    return request.param == "stepwise"


def _to_float64(layer) -> None:
    for var in layer.variables:
        var.value = np.ascontiguousarray(var.value, dtype=np.float64)


def _gradcheck(layer, x, mask=None, samples: int = 6, seed: int = 0) -> None:
    """layer.backward against central differences in float64, the dropout masks redrawn
    identically for every forward pass (the harness's check, tests/gradcheck.py)."""
    check_layer(layer, x, samples=samples, seed=seed, mask=mask)


# ----------------------------------------------------------------------------- Keras's math


def _lstm_reference(x, kernel, rk, bias, h, c):
    """One LSTM step as Keras writes it (gates i, f, c, o), float64."""
    u = rk.shape[0]
    z = x @ kernel + h @ rk + bias
    i, f = _sigmoid(z[:, :u]), _sigmoid(z[:, u : 2 * u])
    cc, o = np.tanh(z[:, 2 * u : 3 * u]), _sigmoid(z[:, 3 * u :])
    c = f * c + i * cc
    return o * np.tanh(c), c


def _gru_reference(x, kernel, rk, bias, h):
    """One GRU step, Keras's reset_after=True (gates z, r, h), float64."""
    u = rk.shape[0]
    mx = x @ kernel + bias[0]
    mi = h @ rk + bias[1]
    z = _sigmoid(mx[:, :u] + mi[:, :u])
    r = _sigmoid(mx[:, u : 2 * u] + mi[:, u : 2 * u])
    hh = np.tanh(mx[:, 2 * u :] + r * mi[:, 2 * u :])
    return z * h + (1 - z) * hh


def _random_weights(layer, rng, scale=0.5):
    layer.set_weights([rng.standard_normal(w.shape) * scale for w in layer.get_weights()])


def _with_every_option(cls, units, input_shape, return_sequences, seed, rng):
    """A built recurrent layer with go_backwards and both dropouts, random weights from rng."""
    layer = cls(
        units,
        return_sequences=return_sequences,
        go_backwards=True,
        dropout=0.1,
        recurrent_dropout=0.2,
        seed=seed,
    )
    layer.build(input_shape)
    _random_weights(layer, rng)
    return layer


def test_lstm_step_matches_keras_equations(stepwise):
    rng = np.random.default_rng(0)
    layer = LSTM(5, return_sequences=True)
    x = rng.standard_normal((3, 2, 4))
    layer(x.astype(np.float32))
    _random_weights(layer, rng)
    kernel, rk, bias = (w.astype(np.float64) for w in layer.get_weights())
    h1, c1 = _lstm_reference(x[:, 0], kernel, rk, bias, np.zeros((3, 5)), np.zeros((3, 5)))
    h2, _ = _lstm_reference(x[:, 1], kernel, rk, bias, h1, c1)
    y = layer(x.astype(np.float32))
    np.testing.assert_allclose(y[:, 0], h1, atol=2e-6)
    np.testing.assert_allclose(y[:, 1], h2, atol=2e-6)
    _to_float64(layer)  # float64 runs np.tanh exactly
    np.testing.assert_allclose(layer.forward(x)[:, 1], h2, rtol=1e-12, atol=1e-12)


def test_gru_step_matches_keras_equations(stepwise):
    rng = np.random.default_rng(1)
    layer = GRU(4, return_sequences=True)
    x = rng.standard_normal((3, 2, 5))
    layer(x.astype(np.float32))
    _random_weights(layer, rng)
    kernel, rk, bias = (w.astype(np.float64) for w in layer.get_weights())
    h1 = _gru_reference(x[:, 0], kernel, rk, bias, np.zeros((3, 4)))
    h2 = _gru_reference(x[:, 1], kernel, rk, bias, h1)
    y = layer(x.astype(np.float32))
    np.testing.assert_allclose(y[:, 0], h1, atol=2e-6)
    np.testing.assert_allclose(y[:, 1], h2, atol=2e-6)
    _to_float64(layer)
    np.testing.assert_allclose(layer.forward(x)[:, 1], h2, rtol=1e-12, atol=1e-12)


def test_simple_rnn_matches_its_equation(stepwise):
    rng = np.random.default_rng(2)
    layer = SimpleRNN(3)
    x = rng.standard_normal((2, 4, 2))
    layer(x.astype(np.float32))
    kernel, rk, bias = (w.astype(np.float64) for w in layer.get_weights())
    h = np.zeros((2, 3))
    for t in range(4):
        h = np.tanh(x[:, t] @ kernel + h @ rk + bias)
    np.testing.assert_allclose(layer(x.astype(np.float32)), h, atol=2e-6)


def test_float32_long_sequence_stays_close_to_float64():
    # the float32 kernels use a rational tanh (error < 3e-7); over 100 steps the outputs stay
    # within 1e-5 of the exact float64 recurrence
    rng = np.random.default_rng(3)
    layer = LSTM(16, return_sequences=True)
    x = rng.standard_normal((4, 100, 8)).astype(np.float32)
    y32 = layer(x)
    _to_float64(layer)
    y64 = layer.forward(x.astype(np.float64))
    np.testing.assert_allclose(y32, y64, atol=1e-5)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_a_nan_weight_gives_nan_outputs_in_float32(stepwise, cell, activation):
    """A NaN never vanishes: in float32 the gates use a rational tanh whose clamp once turned
    NaN into 1, so a model whose recurrent weights had become NaN predicted finite values."""
    rng = np.random.default_rng(3)
    layer = CELLS[cell](5, activation=activation)
    layer.build((4, 3))
    _random_weights(layer, rng)
    rk = layer.recurrent_kernel.value.copy()
    rk[0, 0] = np.nan  # reaches every row from the second step on
    layer.recurrent_kernel.value = rk
    x = rng.standard_normal((8, 4, 3)).astype(np.float32)
    assert np.isnan(layer.forward(x)).all()


@pytest.mark.parametrize("return_sequences", [True, False])
def test_paths_and_thread_splits_agree_in_float32(monkeypatch, return_sequences):
    """One jitted call per sequence (with OpenBLAS's sgemm or the loop product), a BLAS product
    per step, and the batch split over two threads give the same values and gradients."""
    results = []
    sgemm = (False, True) if rnn_kernels.USE_SGEMM else (False,)
    splits = ((10**9, 1), (1, 1), (10**9, 2), (1, 2))
    for own_blas, (threshold, threads) in itertools.product(sgemm, splits):
        monkeypatch.setattr(rnn_kernels, "USE_SGEMM", own_blas)
        monkeypatch.setattr(rnn_kernels, "SGEMM_MIN_ROWS", 1)
        monkeypatch.setattr(rnn_kernels, "PROJECTION_BLOCK_ROWS", 10)
        monkeypatch.setattr(rnn_kernels, "STEPWISE_MIN_BATCH", threshold)
        monkeypatch.setattr(rnn_kernels, "MAX_THREADS", threads)
        rng = np.random.default_rng(4)
        out = []
        for cls in (LSTM, GRU, SimpleRNN):
            layer = _with_every_option(cls, 6, (7, 3), return_sequences, 5, rng)
            x = rng.standard_normal((8, 7, 3)).astype(np.float32)
            mask = rng.random((8, 7)) > 0.3
            y = layer.forward(x, training=True, mask=mask)
            assert layer._cache.fast == (cls is not SimpleRNN)  # the float32 LSTM / GRU kernels
            dx = layer.backward(np.ones_like(y))
            out.append([y, dx, *(v.grad for v in layer.variables)])
        results.append(out)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            for u, v in zip(a, b):
                np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_float32_lstm_and_gru_kernels_match_the_general_float64_ones(
    stepwise, return_sequences, cell
):
    """The float32 LSTM and GRU with tanh and sigmoid run their own vectorised step kernels
    (``lstm_step32`` / ``lstm_bstep32``, ``gru_step32`` / ``gru_bstep32``); outputs and all
    gradients agree with the general kernels, which float64 runs, with masking, go_backwards
    and both dropouts."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((20, 9, 5))
    mask = rng.random((20, 9)) > 0.3
    dy = None
    results = []
    for dtype in (np.float32, np.float64):
        layer = _with_every_option(
            CELLS[cell], 7, (9, 5), return_sequences, 3, np.random.default_rng(7)
        )
        for var in layer.variables:
            var.value = np.ascontiguousarray(var.value, dtype=dtype)
        y = layer.forward(x.astype(dtype), training=True, mask=mask)
        assert layer._cache.fast == (dtype == np.float32)
        if dy is None:
            dy = rng.standard_normal(y.shape)
        dx = layer.backward(dy.astype(dtype))
        results.append([y, dx, *(v.grad for v in layer.variables)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)


# ----------------------------------------------------------------------------- gradients


@settings(max_examples=12, deadline=None)
@given(
    cell=st.sampled_from(sorted(CELLS)),
    batch=st.integers(1, 3),
    steps=st.integers(1, 4),
    features=st.integers(1, 3),
    units=st.integers(1, 4),
    return_sequences=st.booleans(),
    go_backwards=st.booleans(),
    masked=st.booleans(),
    dropout=st.booleans(),
    use_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_gradients_by_central_differences(
    cell,
    batch,
    steps,
    features,
    units,
    return_sequences,
    go_backwards,
    masked,
    dropout,
    use_bias,
    seed,
):
    rng = np.random.default_rng(seed)
    layer = CELLS[cell](
        units,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        use_bias=use_bias,
        dropout=0.3 if dropout else 0.0,
        recurrent_dropout=0.4 if dropout else 0.0,
        seed=seed,
    )
    x = rng.standard_normal((batch, steps, features))
    mask = rng.random((batch, steps)) > 0.3 if masked else None
    layer.build(x.shape[1:])
    _random_weights(layer, rng)
    _gradcheck(layer, x, mask, seed=seed)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gradients_stepwise_path(cell, stepwise):
    rng = np.random.default_rng(7)
    layer = CELLS[cell](3, return_sequences=True, recurrent_dropout=0.3, seed=3)
    x = rng.standard_normal((4, 5, 2))
    mask = rng.random((4, 5)) > 0.25
    layer.build(x.shape[1:])
    _random_weights(layer, rng)
    _gradcheck(layer, x, mask, samples=5)


@pytest.mark.parametrize(
    ("activation", "recurrent_activation"), [("relu", "linear"), ("linear", "tanh")]
)
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_gradients_other_activations(cell, activation, recurrent_activation):
    rng = np.random.default_rng(8)
    layer = CELLS[cell](
        3, activation=activation, recurrent_activation=recurrent_activation, return_sequences=True
    )
    x = rng.standard_normal((2, 4, 3))
    layer.build(x.shape[1:])
    _random_weights(layer, rng, scale=0.2)
    _gradcheck(layer, x)


@settings(max_examples=8, deadline=None)
@given(
    cell=st.sampled_from(sorted(CELLS)),
    merge_mode=st.sampled_from(["concat", "sum", "mul", "ave"]),
    return_sequences=st.booleans(),
    masked=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_bidirectional_gradients(cell, merge_mode, return_sequences, masked, seed):
    rng = np.random.default_rng(seed)
    layer = Bidirectional(CELLS[cell](3, return_sequences=return_sequences), merge_mode=merge_mode)
    x = rng.standard_normal((2, 4, 2))
    mask = rng.random((2, 4)) > 0.3 if masked else None
    layer.build(x.shape[1:])
    _random_weights(layer, rng)
    _gradcheck(layer, x, mask, seed=seed)


# ----------------------------------------------------------------------------- Keras behaviour


def test_keras_weight_layouts_and_initialisers():
    lstm, gru, simple = LSTM(4), GRU(4), SimpleRNN(4)
    for layer in (lstm, gru, simple):
        layer.build((6, 3))
    assert [w.shape for w in lstm.get_weights()] == [(3, 16), (4, 16), (16,)]
    assert [w.shape for w in gru.get_weights()] == [(3, 12), (4, 12), (2, 12)]
    assert [w.shape for w in simple.get_weights()] == [(3, 4), (4, 4), (4,)]
    bias = lstm.get_weights()[2]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(4), np.ones(4), np.zeros(8)])
    assert not LSTM(4, unit_forget_bias=False).get_config()["unit_forget_bias"]
    rk = lstm.get_weights()[1]
    np.testing.assert_allclose(rk @ rk.T, np.eye(4), atol=1e-5)  # orthogonal rows
    assert lstm.count_params() == 4 * 4 * (3 + 4 + 1)
    assert lstm.flops() == 2 * 6 * (3 * 16 + 4 * 16)
    assert re.fullmatch(r"lstm(_\d+)?", lstm.name) and re.fullmatch(r"gru(_\d+)?", gru.name)
    assert re.fullmatch(r"simple_rnn(_\d+)?", simple.name)


def test_masked_steps_keep_the_state_like_truncation(stepwise):
    emb_lstm = Sequential([Embedding(20, 4, mask_zero=True, input_length=6), LSTM(5)])
    ids = np.array([[0, 0, 0, 3, 4, 5], [0, 7, 8, 9, 1, 2]])
    y = emb_lstm.predict(ids)
    table = emb_lstm.layers[0].get_weights()[0]
    for row in range(2):
        real = ids[row][ids[row] != 0]
        alone = emb_lstm.layers[1](table[real][None].astype(np.float32))
        np.testing.assert_allclose(y[row], alone[0], atol=1e-6)


def test_masked_sequence_output_repeats_the_previous_output():
    layer = GRU(3, return_sequences=True)
    x = np.random.default_rng(10).standard_normal((1, 5, 2)).astype(np.float32)
    mask = np.array([[False, True, True, False, False]])
    y = layer(x, mask=mask)
    np.testing.assert_array_equal(y[0, 0], 0)  # before any real step: the zero initial output
    np.testing.assert_array_equal(y[0, 3], y[0, 2])
    np.testing.assert_array_equal(y[0, 4], y[0, 2])


def test_bidirectional_masked_steps_output_zero_and_align_in_time():
    fwd = LSTM(3, return_sequences=True)
    bi = Bidirectional(fwd)
    x = np.random.default_rng(11).standard_normal((2, 5, 2)).astype(np.float32)
    mask = np.array([[False, False, True, True, True]] * 2)
    y = bi(x, mask=mask)
    assert y.shape == (2, 5, 6)
    np.testing.assert_array_equal(y[:, :2], 0)
    # the backward half at step t has seen x[t:], i.e. it equals a go_backwards run reversed
    back = LSTM(3, return_sequences=True, go_backwards=True)
    back.build((5, 2))
    back.set_weights(bi.backward_layer.get_weights())
    np.testing.assert_allclose(y[:, 2:, 3:], back(x, mask=mask)[:, ::-1][:, 2:], atol=1e-6)
    assert [w.shape for w in bi.get_weights()] == [(2, 12), (3, 12), (12,)] * 2


def test_go_backwards_returns_the_sequence_in_processing_order():
    layer = SimpleRNN(2, return_sequences=True, go_backwards=True)
    x = np.random.default_rng(12).standard_normal((1, 4, 3)).astype(np.float32)
    y = layer(x)
    fwd = SimpleRNN(2, return_sequences=True)
    fwd.build((4, 3))
    fwd.set_weights(layer.get_weights())
    np.testing.assert_allclose(y, fwd(x[:, ::-1]), atol=1e-6)


def test_dropout_masks_are_fixed_over_time_and_off_in_inference():
    layer = LSTM(4, return_sequences=True, dropout=0.5, seed=1)
    x = np.ones((3, 6, 8), np.float32)
    assert np.array_equal(layer(x), layer(x))  # inference is deterministic
    layer.forward(x, training=True)
    dx = layer.backward(np.ones((3, 6, 4), np.float32))
    dropped = dx == 0
    assert dropped.any() and not dropped.all()
    assert (dropped == dropped[:, :1]).all()  # one input mask per sequence, as in Keras


def test_batch_size_does_not_change_predictions():
    # batch 40 runs per-step BLAS products, single rows the jitted sequence loop
    model = Sequential(
        [
            Embedding(50, 8, input_length=12),
            LSTM(8, return_sequences=True),
            GRU(6),
            Dense(3, activation="softmax"),
        ]
    )
    ids = np.random.default_rng(13).integers(0, 50, (40, 12))
    together = model.predict(ids, batch_size=40)
    alone = np.concatenate([model.predict(ids[i : i + 1]) for i in range(0, 40, 7)])
    np.testing.assert_allclose(together[::7], alone, atol=1e-6)


def test_training_reduces_the_loss():
    rng = np.random.default_rng(14)
    x = rng.integers(1, 20, (64, 8))
    y = (x[:, -3:].sum(axis=1) > 30).astype(np.int64)
    model = Sequential(
        [Embedding(20, 8, input_length=8, mask_zero=True), LSTM(8), Dense(2, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=12, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


def test_save_load_predict_identical(tmp_path):
    model = Sequential(
        [
            Embedding(30, 6, mask_zero=True, input_length=9),
            Bidirectional(LSTM(5, return_sequences=True)),
            GRU(4, go_backwards=True),
            Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ids = np.random.default_rng(15).integers(0, 30, (6, 9))
    model.fit(ids, np.arange(6) % 3, epochs=1, verbose=0)
    path = tmp_path / "seq.edgemine"
    model.save(path)
    loaded = load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == [
        "Embedding",
        "Bidirectional",
        "GRU",
        "Dense",
    ]
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))


@pytest.mark.parametrize(
    "layer",
    [
        LSTM(3, return_sequences=True, dropout=0.1, unit_forget_bias=False, go_backwards=True),
        GRU(2, activation="relu", recurrent_dropout=0.2, seed=4),
        SimpleRNN(4, use_bias=False, zero_output_for_mask=True),
        Bidirectional(GRU(3, return_sequences=True), merge_mode="ave"),
        Bidirectional(LSTM(2), backward_layer=LSTM(2, go_backwards=True)),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    config = layer.get_config()
    clone = LAYER_REGISTRY[type(layer).__name__].from_config(config)
    assert clone.get_config() == config


# ----------------------------------------------------------------------------- errors


def test_rank_two_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"lstm_in.*rank 3 \(batch, timesteps, features\)"):
        Sequential([LSTM(4, input_shape=(5,), name="lstm_in")])
    layer = GRU(2, name="gru_in")
    with pytest.raises(ValueError, match=r"gru_in.*rank 3"):
        layer(np.zeros((4, 5), np.float32))
    layer(np.zeros((1, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"gru_in.*rank 3"):
        layer.forward(np.zeros((4, 5), np.float32))


def test_return_state_needs_the_functional_api():
    with pytest.raises(ValueError, match="functional API"):
        LSTM(4, return_state=True)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: LSTM(0), ValueError, "units"),
        (lambda: GRU(3, activation="softmax"), ValueError, "not supported in a recurrent cell"),
        (lambda: LSTM(3, dropout=1.0), ValueError, "dropout"),
        (lambda: GRU(3, reset_after=False), ValueError, "reset_after"),
        (lambda: LSTM(3, stateful=True), ValueError, "stateful"),
        (lambda: Bidirectional(Dense(3)), TypeError, "LSTM, GRU or SimpleRNN"),
        (lambda: Bidirectional(LSTM(3), merge_mode=None), ValueError, "functional API"),
        (lambda: Bidirectional(LSTM(3), merge_mode="max"), ValueError, "merge_mode"),
    ],
)
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_mask_of_the_wrong_shape_is_rejected():
    layer = LSTM(2)
    with pytest.raises(ValueError, match="mask shape"):
        layer(np.zeros((2, 3, 1), np.float32), mask=np.ones((2, 4), bool))


# ----------------------------------------------------------------------------- acceptance

ACCEPTANCE = Path(__file__).resolve().parents[2] / "shared/acceptance/seed_lstm.py"


@pytest.mark.slow
@pytest.mark.skipif(not ACCEPTANCE.exists(), reason="shared/acceptance/seed_lstm.py not found")
def test_seed_lstm_acceptance_two_epochs():
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [sys.executable, str(ACCEPTANCE), "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    accuracy = float(re.search(r"Accuracy: ([0-9.]+)", run.stdout).group(1))
    assert accuracy >= 73.0, run.stdout[-500:]


@pytest.mark.parametrize(
    "name", ["edgemine.layers.embedding", "edgemine.layers.recurrent", "edgemine.layers.wrappers"]
)
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("cls", [LSTM, GRU])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_inference_equals_training_forward_without_dropout(stepwise, cls, return_sequences):
    """Inference keeps one time step of the caches (the fast kernels reuse it); the outputs are
    bit for bit those of a training forward pass, with masking and go_backwards."""
    rng = np.random.default_rng(8)
    layer = cls(7, return_sequences=return_sequences, go_backwards=True)
    layer.build((9, 5))
    _random_weights(layer, np.random.default_rng(9))
    x = rng.standard_normal((20, 9, 5)).astype(np.float32)
    mask = rng.random((20, 9)) > 0.3
    np.testing.assert_array_equal(
        layer.forward(x, training=False, mask=mask), layer.forward(x, training=True, mask=mask)
    )
