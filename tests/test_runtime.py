"""edgemine.runtime.Session: the engine's predict interface over onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from deploy_toy_models import make_lstm, toy_tokens

from edgemine.layers import Conv2D, Dense, Flatten, MaxPooling2D
from edgemine.models import Sequential
from edgemine.onnx import export
from edgemine.runtime import Session, default_providers, physical_cores, time_calls


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    model = Sequential(
        [
            Conv2D(4, 3, activation="relu", input_shape=(10, 10, 1)),
            MaxPooling2D(),
            Flatten(),
            Dense(3, activation="softmax"),
        ]
    )
    model.class_names = ["a", "b", "c"]
    model.preprocessing = {"kind": "image", "scale": 1 / 255}
    path = export(model, tmp_path_factory.mktemp("rt") / "cnn.onnx")
    return model, path


@pytest.fixture(scope="module")
def toy_text(tmp_path_factory):
    return make_lstm(tmp_path_factory.mktemp("rt") / "lstm.onnx", vocab=50, maxlen=6)


def test_predict_matches_engine_and_batches(cnn):
    model, path = cnn
    sess = Session(path)
    x = np.random.default_rng(0).random((70, 10, 10, 1))  # float64 in: cast like the engine
    want = model.predict(x)
    for bs in (None, 1, 7, 32, 500):
        np.testing.assert_allclose(sess.predict(x, batch_size=bs), want, rtol=0, atol=1e-5)
    assert sess.predict(x[:1]).shape == (1, 3)
    assert sess.class_names == ["a", "b", "c"]
    assert sess.preprocessing == {"kind": "image", "scale": 1 / 255}
    assert sess.input_shape == (None, 10, 10, 1) and sess.input_dtype == np.float32
    assert sess.output_name == "probabilities"
    assert "Session cnn.onnx" in repr(sess)


def test_defaults(cnn):
    sess = Session(cnn[1])
    assert sess.threads == physical_cores() >= 1
    assert sess.providers == default_providers()
    assert default_providers()[-1] == "CPUExecutionProvider"
    assert Session(cnn[1], threads=1, providers=["CPUExecutionProvider"]).threads == 1
    assert Session(cnn[1].read_bytes()).path is None


def test_input_errors(cnn):
    sess = Session(cnn[1])
    cases = [
        (
            np.zeros((2, 10, 10)),
            ValueError,
            r"shape \(2, 10, 10\), but the model expects "
            r"\(batch, 10, 10, 1\)",
        ),
        (np.zeros((2, 9, 10, 1)), ValueError, "expects"),
        (np.zeros((0, 10, 10, 1)), ValueError, "empty"),
        (np.full((1, 10, 10, 1), np.nan), ValueError, "NaN"),
        (np.array([["a"]]), TypeError, "numeric"),
    ]
    for x, exc, match in cases:
        with pytest.raises(exc, match=match):
            sess.predict(x)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            sess.predict(np.zeros((1, 10, 10, 1)), batch_size=bad)


def test_token_ids(toy_text):
    sess = Session(toy_text)
    assert sess.input_dtype == np.int64 and sess.vocab_size == 50
    x64 = toy_tokens(9, maxlen=6, vocab=50)
    want = sess.predict(x64)
    np.testing.assert_array_equal(sess.predict(x64.astype(np.int32)), want)
    np.testing.assert_array_equal(sess.predict(x64.astype(np.float32)), want)
    with pytest.raises(TypeError, match="integer token ids"):
        sess.predict(x64 + 0.5)
    with pytest.raises(ValueError, match="token id 50, outside the vocabulary \\(0..49\\)"):
        sess.predict(np.full((1, 6), 50))
    with pytest.raises(ValueError, match="token id -1"):
        sess.predict(np.full((1, 6), -1))


def test_bad_files(tmp_path, cnn):
    with pytest.raises(FileNotFoundError, match="not found"):
        Session(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.onnx: not a loadable ONNX model"):
        Session(junk)
    with pytest.raises(ValueError, match="threads"):
        Session(cnn[1], threads=0)
    proto = onnx.load(str(cnn[1]))
    odd = onnx.helper.make_tensor_value_info("extra", onnx.TensorProto.STRING, [1])
    proto.graph.input.append(odd)
    path = tmp_path / "string_input.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(
        ValueError, match=r"unsupported model input type tensor\(string\) \(extra\)"
    ):
        Session(path)


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    """A functional model with an image input and a token-id input, and two outputs."""
    from edgemine import Input, Model
    from edgemine.layers import Concatenate, Embedding, GlobalAveragePooling1D

    image = Input((6, 6, 1), name="image")
    words = Input((5,), dtype="int32", name="words")
    a = Flatten()(Conv2D(2, 3, activation="relu")(image))
    b = GlobalAveragePooling1D()(Embedding(30, 4)(words))
    both = Concatenate()([a, b])
    model = Model(
        [image, words],
        [Dense(3, activation="softmax", name="kind")(both), Dense(1, name="score")(both)],
    )
    return model, export(model, tmp_path_factory.mktemp("rt") / "two.onnx")


def test_several_inputs_and_outputs_match_the_engine(two_inputs):
    model, path = two_inputs
    sess = Session(path)
    assert [t.name for t in sess.inputs] == ["image", "words"]
    assert [t.name for t in sess.outputs] == ["kind", "score"]
    assert sess.vocab_sizes == {"words": 30} and sess.vocab_size is None
    rng = np.random.default_rng(1)
    x = [rng.random((9, 6, 6, 1)), rng.integers(0, 30, (9, 5)).astype(np.int32)]
    want = model.predict(x)
    for bs in (None, 4):
        for feed in (x, tuple(x), {"words": x[1], "image": x[0]}):
            got = sess.predict(feed, batch_size=bs)
            assert isinstance(got, list) and len(got) == 2
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)
    assert "image (batch, 6, 6, 1) float32, words (batch, 5) int64" in repr(sess)


def test_several_inputs_bad_input_names_the_input(two_inputs):
    sess = Session(two_inputs[1])
    img, ids = np.zeros((2, 6, 6, 1)), np.zeros((2, 5), np.int64)
    with pytest.raises(ValueError, match="the model has 2 inputs \\(image, words\\)"):
        sess.predict(img)
    with pytest.raises(ValueError, match="keys \\['image'\\], but the inputs are"):
        sess.predict({"image": img})
    with pytest.raises(ValueError, match="different numbers of samples"):
        sess.predict([img, ids[:1]])
    with pytest.raises(ValueError, match="x\\[1\\] \\('words'\\) holds token id 30"):
        sess.predict([img, np.full((2, 5), 30)])
    with pytest.raises(ValueError, match="x\\[0\\] \\('image'\\) has shape"):
        sess.predict([np.zeros((2, 5, 6, 1)), ids])


def test_time_calls():
    calls = []
    times = time_calls(lambda: calls.append(1), min_time=0.0, min_runs=4, warmup=2)
    assert len(times) == 4 and len(calls) == 6 and all(t >= 0 for t in times)


def test_docstring_examples():
    import doctest

    import edgemine.runtime

    assert doctest.testmod(edgemine.runtime).failed == 0
