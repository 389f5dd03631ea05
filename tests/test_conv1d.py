"""The 1-D layers beyond the layer harness: Keras 3's own outputs
(tests/fixtures/keras_layers_1d.npz, written by tools/make_keras_1d_fixtures.py), clear errors
for bad arguments, ONNX export of 1-D stacks next to other layers (the channels-first sequence
layout), and the motion_cnn zoo model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgemine import layers as L
from edgemine.models import Sequential
from edgemine.onnx import to_onnx

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "keras_layers_1d.npz"


def _keras_cases():
    data = np.load(FIXTURE)
    for k, entry in enumerate(json.loads(str(data["configs"]))):
        weights = [data[f"w{k}_{i}"] for i in range(8) if f"w{k}_{i}" in data]
        mask = data[f"mask{k}"] if f"mask{k}" in data else None
        label = f"{entry['class_name']}-{k}"
        yield pytest.param(entry, data[f"x{k}"], weights, mask, data[f"y{k}"], id=label)


@pytest.mark.parametrize("entry, x, weights, mask, want", list(_keras_cases()))
def test_outputs_match_keras(entry, x, weights, mask, want):
    layer = L.LAYER_REGISTRY[entry["class_name"]](**entry["config"])
    layer.build(x.shape[1:])
    if weights:
        layer.set_weights(weights)
    got = layer(x, mask=mask)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make, input_shape, error, match",
    [
        (lambda: L.Conv1D(4, 3, strides=2, dilation_rate=2), None, ValueError, "strides > 1"),
        (lambda: L.Conv1D(4, 5), (3, 2), ValueError, "shorter than the kernel's span"),
        (lambda: L.Conv1D(4, 3, dilation_rate=3), (6, 2), ValueError, r"span \(7 steps\)"),
        (lambda: L.Conv1D(4, 3, padding="full"), None, ValueError, "'causal'"),
        (lambda: L.Conv1D(0, 3), None, ValueError, "filters must be a positive int"),
        (lambda: L.Conv1D(4, 0), None, ValueError, "kernel_size"),
        (lambda: L.Conv1D(4, 3), (5, 5, 2), ValueError, r"expects \(steps, channels\)"),
        (lambda: L.Conv1D(4, 3, data_format="channels_first"), None, ValueError, "channels_last"),
        (lambda: L.Conv1DTranspose(4, 3, padding="causal"), None, ValueError, "'valid', 'same'"),
        (lambda: L.Conv1DTranspose(4, 3, output_padding=1), None, ValueError, "output_padding"),
        (lambda: L.MaxPooling1D(4), (3, 2), ValueError, "shorter than pool_size"),
        (lambda: L.AveragePooling1D(2, strides=0), None, ValueError, "strides"),
        (lambda: L.UpSampling1D(0), None, ValueError, "size must be a positive int"),
        (lambda: L.GlobalMaxPooling1D(keepdims="yes"), None, TypeError, "keepdims"),
        (lambda: L.GlobalAveragePooling1D(), (4,), ValueError, r"expects \(steps, channels\)"),
    ],
)
def test_bad_arguments_are_refused_clearly(make, input_shape, error, match):
    with pytest.raises(error, match=match):
        layer = make()
        layer.build(input_shape)


def test_masks_of_the_wrong_shape_or_for_layers_that_take_none_are_refused():
    with pytest.raises(ValueError, match="does not take a mask"):
        L.GlobalMaxPooling1D()(np.ones((1, 3, 2)), mask=np.ones((1, 3), bool))
    with pytest.raises(ValueError, match=r"must be \(batch, steps\) = \(1, 3\), got \(3,\)"):
        L.GlobalAveragePooling1D()(np.ones((1, 3, 2)), mask=np.ones(3, bool))


def _onnx_matches(model, x, atol=1e-5):
    proto = to_onnx(model)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {proto.graph.input[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=atol)
    return [n.op_type for n in proto.graph.node]


@pytest.mark.parametrize(
    "stack",
    [
        # the channels-first layout leaves before layers that want Keras's order
        lambda: [L.Conv1D(4, 3, padding="causal"), L.LSTM(3)],
        lambda: [L.Conv1D(4, 3), L.Dense(2)],
        lambda: [L.Conv1D(4, 2, strides=2), L.Flatten(), L.Dense(2)],
        lambda: [L.Conv1D(4, 3, activation="relu"), L.BatchNormalization(), L.MaxPooling1D()],
        lambda: [L.Dense(4), L.Conv1D(3, 3, padding="same", activation="softmax")],
        lambda: [L.UpSampling1D(2), L.Conv1DTranspose(3, 3, strides=2), L.AveragePooling1D(3)],
        lambda: [L.LSTM(4, return_sequences=True), L.Conv1D(3, 2), L.GlobalMaxPooling1D()],
        lambda: [L.Conv1D(4, 3), L.GlobalAveragePooling1D(keepdims=True), L.Flatten()],
    ],
)
def test_onnx_export_of_1d_stacks(stack):
    layers = stack()
    model = Sequential([L.InputLayer(shape=(9, 3)), *layers])
    x = np.random.default_rng(0).standard_normal((4, 9, 3)).astype(np.float32)
    _onnx_matches(model, x)


def test_a_conv1d_stack_transposes_once_and_folds_batch_normalization():
    model = Sequential(
        [
            L.Conv1D(8, 3, padding="same", input_shape=(20, 6)),
            L.BatchNormalization(),
            L.Activation("relu"),
            L.Conv1D(8, 3, padding="same"),
            L.BatchNormalization(),
            L.Activation("relu"),
            L.GlobalAveragePooling1D(),
            L.Dense(4, activation="softmax"),
        ]
    )
    rng = np.random.default_rng(1)
    for layer in model.layers:  # non-trivial moving statistics
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(0, 0.3, 8),
                               rng.normal(0, 0.3, 8), rng.uniform(0.5, 1.5, 8)])  # fmt: skip
    x = rng.standard_normal((3, 20, 6)).astype(np.float32)
    ops = _onnx_matches(model, x)
    assert ops.count("Transpose") == 1 and "Mul" not in ops, ops


def test_flops():
    conv = L.Conv1D(64, 3, padding="same")
    conv.build((100, 6))
    assert conv.flops() == 2 * 100 * 64 * 3 * 6
    up = L.Conv1DTranspose(4, 3, strides=2)
    up.build((10, 6))
    assert up.flops() == 2 * 10 * 6 * 3 * 4


def test_motion_cnn_trains_on_basicmotions(tmp_path):
    from click.testing import CliRunner

    from edgemine.cli import main
    from edgemine.models import load_model

    out = tmp_path / "m.edgemine"
    args = ["train", "motion_cnn", "-o", str(out), "--epochs", "2", "--seed", "0"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "test loss" in result.output
    model = load_model(out)
    assert model.input_shape == (100, 6) and model.output_shape == (4,)


def test_functional_1d_graphs_export_with_merges_in_either_layout():
    """A residual 1-D block adds in the channels-first layout; a Concatenate, an LSTM and a
    second output read the same channels-first tensor in Keras's order."""
    from edgemine.models import Model

    inp = L.Input(shape=(12, 3))
    h = L.Conv1D(4, 3, padding="same", activation="relu")(inp)
    r = L.Conv1D(4, 3, padding="causal", dilation_rate=2)(h)
    s = L.Add()([h, r])
    joined = L.Concatenate()([s, L.Conv1D(2, 1)(inp)])
    out1 = L.Dense(2, activation="softmax")(L.GlobalAveragePooling1D()(joined))
    out2 = L.LSTM(3)(s)
    model = Model(inp, [out1, out2])
    x = np.random.default_rng(2).standard_normal((3, 12, 3)).astype(np.float32)
    proto = to_onnx(model)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {proto.graph.input[0].name: x})
    for g, want in zip(got, model.predict(x, verbose=0)):
        np.testing.assert_allclose(g, want, atol=1e-5)
    ops = [n.op_type for n in proto.graph.node]
    assert "Sum" in ops or "Add" in ops


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_sequences_of_any_length(padding):
    """Input(shape=(None, c)): the engine and the exported graph take any length; a batch too
    short for the kernel is refused clearly."""
    from edgemine.models import Model

    inp = L.Input(shape=(None, 3))
    h = L.Conv1D(4, 3, strides=2, padding=padding)(inp)
    h = L.MaxPooling1D(2, padding="same")(L.Conv1D(4, 2, dilation_rate=2, padding=padding)(h))
    h = L.Conv1DTranspose(3, 3, strides=2, padding="same")(h)
    model = Model(inp, L.Dense(2)(L.GlobalMaxPooling1D()(h)))
    proto = to_onnx(model)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    for steps in (9, 16):
        x = rng.standard_normal((2, steps, 3)).astype(np.float32)
        got = sess.run(None, {proto.graph.input[0].name: x})[0]
        np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5)
    if padding == "valid":
        with pytest.raises(ValueError, match="shorter than the kernel's span"):
            model.predict(np.zeros((1, 2, 3), np.float32), verbose=0)
