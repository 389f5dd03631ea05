"""The layers of issue 15's Keras programs beyond the harness: Keras's formulas and defaults,
clear errors for bad arguments, and the ONNX graphs at every opset the converters choose
between (LayerNormalization below and from opset 17)."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest

from edgemine.layers import (
    Dense,
    LayerNormalization,
    LeakyReLU,
    ReLU,
    RepeatVector,
    Softmax,
    SpatialDropout1D,
    TimeDistributed,
)
from edgemine.models import Sequential
from edgemine.onnx import to_onnx


def keras_relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras 3's ``activations.relu`` written out (keras/src/activations/activations.py)."""
    pos = np.where(x > threshold, x, 0.0)
    if max_value is not None:
        pos = np.clip(pos, 0.0, max_value)
    return pos - negative_slope * np.maximum(threshold - x, 0.0)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"max_value": 6.0},
        {"negative_slope": 0.1, "threshold": 0.5},
        {"max_value": 1.0, "threshold": 0.2},
    ],
)
def test_relu_is_keras_relu(config):
    x = np.linspace(-3, 8, 45, dtype=np.float32).reshape(5, 9)
    np.testing.assert_allclose(ReLU(**config)(x), keras_relu(x, **config), rtol=1e-6)


def test_leaky_relu_default_and_keras2_alpha():
    x = np.array([[-10.0, -1.0, 0.0, 2.0]], np.float32)
    assert LeakyReLU().negative_slope == 0.3  # Keras 3's default
    np.testing.assert_allclose(LeakyReLU()(x), [[-3.0, -0.3, 0.0, 2.0]], rtol=1e-6)
    with pytest.warns(DeprecationWarning, match="alpha"):
        layer = LeakyReLU(alpha=0.1)
    assert layer.get_config()["negative_slope"] == 0.1


def test_softmax_over_an_inner_axis_and_over_two_axes():
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    y = Softmax(axis=1)(x)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    both = Softmax(axis=[1, 2])(x)
    np.testing.assert_allclose(both, np.exp(x) / np.exp(x).sum(axis=(1, 2), keepdims=True), 1e-5)


def test_layer_normalization_is_keras_math_with_its_weights():
    x = np.random.default_rng(1).standard_normal((4, 3, 5)).astype(np.float32)
    layer = LayerNormalization()
    y = layer(x)
    assert [v.name for v in layer.weights] == ["gamma", "beta"]
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), atol=1e-5)
    assert LayerNormalization(center=False).get_config()["epsilon"] == 1e-3


def test_spatial_dropout_drops_whole_channels_and_is_identity_at_inference():
    x = np.ones((8, 6, 5), np.float32)
    layer = SpatialDropout1D(0.5, seed=0)
    y = layer(x, training=True)
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert (y == y[:, :1, :]).all()  # the same at every step
    assert 0 < (y == 0).mean() < 1
    np.testing.assert_array_equal(layer(x), x)


def test_time_distributed_dense_is_dense_per_step_and_shares_its_weights():
    x = np.random.default_rng(2).standard_normal((3, 4, 5)).astype(np.float32)
    td = TimeDistributed(Dense(2, activation="tanh"))
    y = td(x)
    kernel, bias = td.get_weights()
    np.testing.assert_allclose(y, np.tanh(x @ kernel + bias), atol=1e-6)
    assert td.count_params() == 12 and td.layer.built


def test_lstm_autoencoder_trains_and_exports():
    from edgemine.layers import LSTM

    x = np.sin(np.arange(64 * 10).reshape(64, 10, 1) / 7.0).astype(np.float32)
    model = Sequential(
        [
            LSTM(8, input_shape=(10, 1)),
            RepeatVector(10),
            LSTM(8, return_sequences=True),
            TimeDistributed(Dense(1)),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, x, epochs=3, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    sess = ort.InferenceSession(to_onnx(model).SerializeToString())
    got = sess.run(None, {"input": x[:5]})[0]
    np.testing.assert_allclose(got, model.predict(x[:5]), atol=1e-5)


@pytest.mark.parametrize("opset", [13, 16, 17, 18])
@pytest.mark.parametrize(
    "layer",
    [
        lambda: LayerNormalization(),
        lambda: LayerNormalization(axis=[-2, -1], center=False),
        lambda: Softmax(axis=[1, 2]),
        lambda: ReLU(max_value=0.5, negative_slope=0.2, threshold=0.1),
    ],
)
def test_export_at_each_opset_matches_the_engine(opset, layer):
    model = Sequential([Dense(4, input_shape=(3, 2)), layer()])
    x = np.random.default_rng(3).standard_normal((2, 3, 2)).astype(np.float32)
    proto = to_onnx(model, opset=opset)
    ops = {n.op_type for n in proto.graph.node}
    if isinstance(model.layers[1], LayerNormalization):
        assert ("LayerNormalization" in ops) == (opset >= 17)
    sess = ort.InferenceSession(proto.SerializeToString())
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], model.predict(x), atol=1e-5)


def test_relu_exports_as_the_plain_op_where_it_can():
    def ops(layer):
        model = Sequential([Dense(3, input_shape=(2,)), layer])
        return [n.op_type for n in to_onnx(model).graph.node][1:]

    assert ops(ReLU()) == ["Relu"]
    assert ops(ReLU(max_value=6)) == ["Relu", "Clip"]
    assert ops(LeakyReLU(0.2)) == ["LeakyRelu"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ReLU(max_value=-1), "max_value must be a finite number >= 0"),
        (lambda: ReLU(negative_slope=None), "negative_slope"),
        (lambda: ReLU(threshold=-0.5), "threshold"),
        (lambda: LeakyReLU(negative_slope=-0.1), "negative_slope"),
        (lambda: RepeatVector(0), "RepeatVector n must be a positive int"),
        (lambda: RepeatVector(2.5), "RepeatVector n"),
        (lambda: SpatialDropout1D(1.0), r"rate must be in \[0, 1\)"),
        (lambda: LayerNormalization(epsilon=0), "epsilon must be positive"),
        (lambda: LayerNormalization(rms_scaling=True), "rms_scaling"),
    ],
)
def test_bad_arguments_are_refused_clearly(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (lambda: RepeatVector(3), (4, 2), r"RepeatVector takes \(batch, features\)"),
        (lambda: SpatialDropout1D(0.2), (4,), r"takes \(batch, steps, channels\)"),
        (lambda: Softmax(axis=0), (4,), "not a non-batch axis"),
        (lambda: Softmax(axis=[1, 3]), (2, 3, 4), "must be adjacent"),
        (lambda: LayerNormalization(axis=1), (3, 4), "trailing axes only"),
        (lambda: TimeDistributed(Dense(2)), (4,), "at least 3 axes"),
    ],
)
def test_shapes_a_layer_cannot_take_are_refused_clearly(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        Sequential([layer()]).build((None, *shape))


def test_time_distributed_needs_a_layer():
    with pytest.raises(TypeError, match="wraps a layer instance"):
        TimeDistributed("dense")
    with pytest.raises(ValueError, match="a known layer"):
        TimeDistributed({"class_name": "NoSuch", "config": {}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TimeDistributed({"class_name": "Dense", "config": {"units": 2}})
