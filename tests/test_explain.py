"""Explanations: integrated gradients satisfy completeness on random small models (Dense,
Conv2D, Embedding + LSTM), gradient x input is exact on linear models, explaining leaves the
model as it was, and ``edgemine explain`` writes heat-maps and token strips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgemine.cli import main
from edgemine.explain import explain, gradient_x_input, integrated_gradients
from edgemine.layers import (
    GRU,
    LSTM,
    BatchNormalization,
    Bidirectional,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    MaxPooling2D,
    SimpleRNN,
)
from edgemine.models import Sequential
from edgemine.utils import set_random_seed


def dense_model():
    return Sequential(
        [Dense(16, "relu", input_shape=(6,)), Dense(8, "tanh"), Dense(4, "softmax")]
    ), lambda r: r.normal(size=(6,))


def conv_model():
    layers = [
        Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
        BatchNormalization(),
        MaxPooling2D(2),
        Dropout(0.3),
        Flatten(),
        Dense(5, "softmax"),
    ]
    return Sequential(layers), lambda r: r.random((8, 8, 1))


def lstm_model():
    layers = [Embedding(30, 8, input_length=7), LSTM(6, dropout=0.2), Dense(3, "softmax")]
    return Sequential(layers), lambda r: r.integers(0, 30, 7)


def masked_rnn_model():
    layers = [
        Embedding(30, 8, input_length=7, mask_zero=True),
        Bidirectional(LSTM(4, return_sequences=True)),
        GRU(5, return_sequences=True),
        SimpleRNN(3),
        Dense(3, "softmax"),
    ]
    return Sequential(layers), lambda r: np.r_[[0, 0], r.integers(1, 30, 5)]


BUILDERS = [dense_model, conv_model, lstm_model, masked_rnn_model]


def strengthen(model, factor: float = 2.0):
    """Random small recurrent models give nearly the same output for every input; bigger
    weights make f(x) - f(baseline) large enough to test completeness at 1%. (Not much
    bigger: at 3x the masked stack's output jumps within 0.5% of the path, a spike that 128
    points cannot integrate; 512 can: integrated gradients need smooth enough models.)"""
    model.set_weights([w * factor for w in model.get_weights()])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_integrated_gradients_are_complete(build, seed):
    set_random_seed(seed)
    model, sample = build()
    if isinstance(model.layers[0], Embedding):
        strengthen(model)
    x = sample(np.random.default_rng(seed))
    results = [integrated_gradients(model, x, target=c, steps=128) for c in range(model.output_shape[-1])]  # fmt: skip
    e = max(results, key=lambda r: abs(r.score - r.baseline_score))  # the clearest case
    assert abs(e.score - e.baseline_score) > 1e-3
    assert e.score == pytest.approx(float(model.predict(x[None])[0, e.target]), abs=1e-5)
    for r in results:
        gap = abs(r.attributions.sum() - (r.score - r.baseline_score))
        assert gap <= 0.01 * abs(e.score - e.baseline_score)
    assert e.completeness_error < 0.01


def test_blurred_baseline_is_complete_too():
    set_random_seed(0)
    model, sample = conv_model()
    e = integrated_gradients(model, sample(np.random.default_rng(0)), baseline="blur")
    assert e.completeness_error < 0.01 and e.baseline == "blur"


def test_linear_model_attributions_are_exact():
    set_random_seed(1)
    model = Sequential([Dense(3, input_shape=(5,))])  # f_c(x) = x . w_c + b_c
    x = np.random.default_rng(1).normal(size=5)
    w = model.get_weights()[0][:, 2]
    for e in (gradient_x_input(model, x, target=2), integrated_gradients(model, x, 2, steps=3)):
        np.testing.assert_allclose(e.attributions, x * w, rtol=1e-5, atol=1e-6)


def test_explaining_leaves_the_model_as_it_was():
    set_random_seed(2)
    model, sample = masked_rnn_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    x = sample(np.random.default_rng(2))
    model.fit(x[None], np.array([1]), epochs=1, verbose=0)
    before = model.get_weights()
    pred = model.predict(x[None])
    flags = [layer.need_input_grad for layer in model.layers]
    explain(model, x, steps=16)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pred, model.predict(x[None]))
    assert flags == [layer.need_input_grad for layer in model.layers]
    model.fit(x[None], np.array([1]), epochs=1, verbose=0)  # training still works after


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "shap"}, "method must be one of ig, gxi"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"target": 9}, "target 9 is outside the model's 4 outputs"),
        ({"baseline": "noise"}, "baseline must be one of zero, blur"),
        ({"baseline": "blur"}, "blurred baseline is for image inputs"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    model, _ = dense_model()
    with pytest.raises(ValueError, match=match):
        explain(model, np.zeros(6), **kwargs)


def test_one_sample_at_a_time():
    model, _ = dense_model()
    with pytest.raises(ValueError, match="one sample at a time"):
        explain(model, np.zeros((2, 6)))
    with pytest.raises(ValueError, match="shape"):
        explain(model, np.zeros(5))


def test_cli_explains_images(tmp_path):
    set_random_seed(0)
    model, _ = conv_model()
    model.preprocessing = {"kind": "image", "height": 8, "width": 8, "channels": 1, "resize": True}
    model.class_names = list("abcde")
    model.save(tmp_path / "m.edgemine")
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "img.png")
    Image.fromarray(np.kron(pixels, np.ones((2, 2), np.uint8))).save(tmp_path / "big.png")
    out = tmp_path / "why"
    images = [str(tmp_path / "img.png"), str(tmp_path / "big.png")]  # big: resized as in predict
    args = ["explain", str(tmp_path / "m.edgemine"), *images, "-o", str(out)]
    r = CliRunner().invoke(main, [*args, "--steps", "64", "--baseline", "blur"])
    assert r.exit_code == 0, r.output
    assert "completeness error" in r.output
    with Image.open(out / "img.png") as im:
        im.verify()
    saved = json.loads((out / "explanations.json").read_text())
    assert saved[0]["class_name"] in "abcde" and saved[0]["completeness_error"] < 0.01
    assert np.load(out / "img_attributions.npy").shape == (8, 8, 1)
    assert np.load(out / "big_attributions.npy").shape == (8, 8, 1)
    with Image.open(out / "big.png") as im:
        im.verify()


def test_cli_explains_texts(tmp_path):
    set_random_seed(0)
    model, _ = lstm_model()
    strengthen(model)
    model.preprocessing = {"kind": "text", "maxlen": 7, "word_index": {"good": 1, "bad": 2, "it's": 3}}  # fmt: skip
    model.save(tmp_path / "t.edgemine")
    (tmp_path / "texts.txt").write_text("good good it's day\n\nbad\n")
    out = tmp_path / "why"
    args = ["explain", str(tmp_path / "t.edgemine"), str(tmp_path / "texts.txt"), "-o", str(out)]
    r = CliRunner().invoke(main, [*args, "--method", "gxi", "--target", "1"])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "explanations.json").read_text())
    assert [s["input"] for s in saved] == ["texts.txt:1", "texts.txt:3"]
    assert [t["token"] for t in saved[0]["tokens"]] == ["good", "good", "it's"]  # 'day': unknown
    assert saved[0]["class"] == 1
    page = (out / "texts.html").read_text()
    assert page.count("<span") == 4 and "it&#x27;s" in page
    r = CliRunner().invoke(main, [*args, "--baseline", "blur"])
    assert r.exit_code == 1 and "zero baseline" in r.output


def test_cli_explains_table_rows(tmp_path):
    set_random_seed(0)
    model, _ = dense_model()
    columns = [f"f{i}" for i in range(6)]
    model.preprocessing = {"kind": "table", "columns": columns, "label_column": "y", "mean": [1.0] * 6, "std": [2.0] * 6}  # fmt: skip
    model.save(tmp_path / "t.edgemine")
    rows = ["f5,f4,f3,f2,f1,f0,y", "1,2,3,4,5,6,a", "0,0,0,0,0,9,b"]  # any column order
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "why"
    r = CliRunner().invoke(main, ["explain", str(tmp_path / "t.edgemine"), str(tmp_path / "rows.csv"), "-o", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "explanations.json").read_text())
    assert [s["input"] for s in saved] == ["rows.csv:2", "rows.csv:3"]
    first = saved[0]["features"]
    assert [f["column"] for f in first] == columns and first[0]["value"] == 6.0
    assert saved[0]["completeness_error"] < 0.01
    with Image.open(out / "rows_2.png") as im:
        im.verify()
