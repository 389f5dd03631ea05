"""The functional API: graphs of layers from keras.Input, merges, shared layers, several inputs
and outputs; gradients through the graph by finite differences, training against Sequential,
save/load and ONNX export of whole graphs, and clear errors."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from gradcheck import numeric_grad, to_float64

from edgemine.layers import (
    GRU,
    LSTM,
    Add,
    BatchNormalization,
    Concatenate,
    Conv2D,
    Dense,
    Embedding,
    Flatten,
    GlobalAveragePooling2D,
    Input,
    MaxPooling2D,
    Multiply,
    Subtract,
)
from edgemine.models import Model, Sequential, load_model
from edgemine.models.graph import run_backward, run_forward
from edgemine.onnx import to_onnx
from edgemine.utils import set_random_seed


def _shared_graph():
    """A tensor read three times (h), a layer called at two nodes (shared), two inputs."""
    a, b = Input(shape=(4,), name="a"), Input(shape=(4,), name="b")
    h = Dense(4, activation="tanh", name="h")(a)
    shared = Dense(4, activation="tanh", name="shared")
    u, v = shared(h), shared(b)
    m = Multiply()([u, h])
    out = Dense(3, name="out")(Concatenate()([m, v, Subtract()([h, v])]))
    return Model([a, b], out)


def test_gradients_through_merges_and_shared_layers_match_finite_differences():
    """Gradients of a tensor used several times add up, and a shared layer's weight gradient
    is the sum over its calls (float64 central differences of sum(output * g))."""
    set_random_seed(0)
    model = _shared_graph()
    for layer in model.layers:
        to_float64(layer)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((5, 4)), rng.standard_normal((5, 4))]
    g = rng.standard_normal((5, 3))
    graph = model._graph

    def loss():
        return float(np.sum(run_forward(graph, xs, True)[id(graph.outputs[0])] * g))

    loss()
    run_backward(graph, model.ops, {id(graph.outputs[0]): g})
    for var in model.trainable_variables:
        analytic = np.asarray(var.grad).reshape(-1)
        idx = rng.choice(var.value.size, size=min(12, var.value.size), replace=False)
        np.testing.assert_allclose(
            analytic[idx],
            numeric_grad(loss, var.value, idx),
            rtol=1e-5,
            atol=1e-7,
            err_msg=var.name,
        )


def test_a_chain_trains_bit_for_bit_like_the_same_sequential():
    def layers():
        return [
            Conv2D(3, 3, activation="relu", name="c"),
            MaxPooling2D(name="p"),
            Flatten(name="f"),
            Dense(4, activation="softmax", name="d"),
        ]

    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 4, 16)
    weights = []
    for functional in (False, True):
        set_random_seed(5)
        if functional:
            t = inp = Input(shape=(8, 8, 1))
            for layer in layers():
                t = layer(t)
            model = Model(inp, t)
        else:
            model = Sequential([Input(shape=(8, 8, 1)), *layers()])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=2, batch_size=4, verbose=0)
        weights.append(model.get_weights())
    for p, q in zip(*weights):
        np.testing.assert_array_equal(p, q)


def _residual_cnn():
    x = Input(shape=(8, 8, 2))
    c = Conv2D(4, 3, padding="same", activation="relu")(x)
    r = Conv2D(4, 3, padding="same")(c)
    r = BatchNormalization()(r)
    s = Add()([c, r])
    return Model(x, Dense(3, activation="softmax")(GlobalAveragePooling2D()(s)))


def _two_branch_text(mask_zero: bool):
    ids = Input(shape=(7,), dtype="int32")
    e = Embedding(30, 6, mask_zero=mask_zero)(ids)
    joined = Concatenate()([LSTM(5)(e), GRU(4)(e)])
    return Model(ids, Dense(3, activation="softmax")(joined))


@pytest.mark.parametrize(
    "make,x",
    [
        (_residual_cnn, np.random.default_rng(0).standard_normal((5, 8, 8, 2)).astype(np.float32)),
        (lambda: _two_branch_text(False), np.random.default_rng(0).integers(0, 30, (5, 7))),
        (lambda: _two_branch_text(True), np.random.default_rng(0).integers(0, 30, (5, 7))),
    ],
)
def test_functional_models_save_load_and_export(make, x, tmp_path):
    set_random_seed(2)
    model = make()
    model.compile("adam", "sparse_categorical_crossentropy")
    x = x.copy()
    if x.dtype.kind == "i":
        x[0, :3] = 0  # padding, masked where mask_zero
    model.fit(x, np.arange(5) % 3, epochs=2, batch_size=2, verbose=0)
    want = model.predict(x)
    model.save(tmp_path / "m.edgemine")
    loaded = load_model(tmp_path / "m.edgemine")
    np.testing.assert_array_equal(loaded.predict(x), want)
    assert loaded.get_config() == model.get_config()
    sess = ort.InferenceSession(to_onnx(model).SerializeToString())
    feed = x.astype(np.int64) if x.dtype.kind == "i" else x
    for rows in (slice(0, 1), slice(None)):
        got = sess.run(None, {sess.get_inputs()[0].name: feed[rows]})[0]
        np.testing.assert_allclose(got, want[rows], atol=1e-5, rtol=0)
    loaded.fit(x, np.arange(5) % 3, epochs=1, verbose=0)  # the optimizer state came along


def test_several_inputs_by_list_or_dict_and_several_outputs_predict():
    a, b = Input(shape=(2,), name="a"), Input(shape=(3,), name="b")
    joined = Concatenate()([a, b])
    model = Model({"a": a, "b": b}, [Dense(1, name="o1")(joined), Dense(2, name="o2")(joined)])
    xa, xb = np.ones((40, 2), np.float32), np.zeros((40, 3), np.float32)
    by_list = model.predict([xa, xb], batch_size=16)
    by_dict = model.predict({"b": xb, "a": xa}, batch_size=16)
    assert [o.shape for o in by_list] == [(40, 1), (40, 2)]
    for p, q in zip(by_list, by_dict):
        np.testing.assert_array_equal(p, q)
    model.compile("adam", "mse")  # one loss for both outputs (tests/test_multi_output.py)
    with pytest.raises(ValueError, match=r"2 outputs \(o1, o2\): give y as a list"):
        model.fit([xa, xb], np.zeros((40, 1)), verbose=0)
    hist = model.fit([xa, xb], [np.zeros((40, 1)), np.zeros((40, 2))], verbose=0)
    assert sorted(hist.history) == ["loss", "o1_loss", "o2_loss"]


def test_keras_tensor_arithmetic_builds_merge_layers():
    a, b = Input(shape=(2,)), Input(shape=(2,))
    model = Model([a, b], a + b * b - a)
    x, y = np.full((1, 2), 3.0, np.float32), np.full((1, 2), 2.0, np.float32)
    np.testing.assert_array_equal(model.predict([x, y]), y * y)


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: Model(Input(shape=(2,)), Dense(1)(Input(shape=(2,)))), "graph disconnected"),
        (lambda: Add()([Input(shape=(2,)), Input(shape=(3,))]), "one shape"),
        (lambda: Dense(2)([Input(shape=(2,)), Input(shape=(2,))]), "takes one tensor"),
        (lambda: Add()(Input(shape=(2,))), "merges a list"),
        (lambda: Sequential([Input(shape=(2,)), Add()]), "functional API"),
        (lambda: Model(), "needs both"),
        (lambda: Input(shape=(2,), dtype="complex64"), "dtype"),
        (lambda: Subtract()([Input(shape=(2,))] * 3), "exactly 2"),
    ],
)
def test_graph_mistakes_get_clear_errors(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_a_failed_add_leaves_the_model_as_it_was():
    model = Sequential([Input(shape=(4, 4, 1)), Flatten()])
    with pytest.raises(ValueError):
        model.add(Conv2D(2, 3))  # Conv2D needs an image, Flatten made a vector
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Flatten"]
    model.add(Dense(2))
    assert model.output_shape == (2,)


def test_a_model_called_on_a_keras_tensor_is_refused_by_name():
    inner = Sequential([Input(shape=(2,)), Dense(2)], name="inner")
    with pytest.raises(TypeError, match="model 'inner' called on a KerasTensor"):
        inner(Input(shape=(2,)))


def test_shared_layer_refuses_a_second_input_shape():
    shared = Dense(2)
    shared(Input(shape=(3,)))
    with pytest.raises(ValueError, match="shared layer"):
        shared(Input(shape=(4,)))


def test_wrong_inputs_are_named():
    a, b = Input(shape=(2,), name="a"), Input(shape=(3,), name="b")
    model = Model([a, b], Concatenate()([a, b]))
    with pytest.raises(ValueError, match="2 inputs"):
        model.predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="keys"):
        model.predict({"a": np.zeros((1, 2))})
    with pytest.raises(ValueError, match=r"x\[1\] \(input 'b'\) has shape"):
        model.predict([np.zeros((1, 2)), np.zeros((1, 4))])
    with pytest.raises(ValueError, match="different numbers of samples"):
        model.predict([np.zeros((1, 2)), np.zeros((2, 3))])


def test_summary_shows_the_connections():
    lines = []
    _shared_graph().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text and "shared (Dense)" in text and "h, shared" in text
