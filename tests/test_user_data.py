"""Your own data through the CLI: a CSV table, a CSV of texts, a folder of images; trained,
evaluated, predicted by the engine, by onnxruntime and by a bundle, all prepared alike."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgemine import zoo
from edgemine.cli import main
from edgemine.datasets import digits, user_data, wine
from edgemine.datasets.splits import per_class_test_rows
from edgemine.models import load_model
from edgemine.preprocessing.inputs import InputError


def cli(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args) -> str:
    r = cli(*args)
    assert r.exit_code == 0, r.output
    return r.output


def refused(match: str, *args) -> None:
    r = cli(*args)
    assert r.exit_code != 0, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and match in lines[0], r.output


def _rewrite(src, dst, columns):
    rows = list(csv.reader(src.open()))
    with dst.open("w", newline="") as f:
        csv.writer(f).writerows([[row[i] for i in columns] for row in rows])


@pytest.fixture(scope="module")
def wine_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("wine")
    data = wine.write_csv(d / "wine.csv")
    model = d / "wine.edgemine"
    out = ok(
        "train", "mlp", "--data", data, "-o", model, "--epochs", 3, "--seed", 0, "--verbose", 0
    )
    assert "test loss" in out
    return d, data, model


def test_csv_in_any_column_order_predicts_alike_everywhere(wine_model, tmp_path):
    d, data, model = wine_model
    n = len(wine.FEATURE_NAMES) + 1
    order = list(range(n))
    random.Random(0).shuffle(order)
    _rewrite(data, tmp_path / "shuffled.csv", order)
    _rewrite(data, tmp_path / "unlabelled.csv", range(n - 1))
    m = load_model(model)
    assert m.preprocessing["kind"] == "table" and m.preprocessing["label_column"] == "class"
    assert m.class_names == ["class_0", "class_1", "class_2"]
    prepared = zoo.load_data(str(data), pre=m.preprocessing, class_names=m.class_names)
    x = np.concatenate([prepared.x_train, prepared.x_test])
    assert x.shape == (178, 13)
    onnx_path = tmp_path / "wine.onnx"
    ok("export", model, "-o", onnx_path)
    ok("predict", model, tmp_path / "shuffled.csv", "-o", tmp_path / "engine.npy")
    ok("predict", onnx_path, tmp_path / "unlabelled.csv", "-o", tmp_path / "ort.npy")
    ok("bundle", model, "-o", tmp_path / "bundle")
    res = subprocess.run(
        [sys.executable, str(tmp_path / "bundle" / "run.py"), str(tmp_path / "shuffled.csv")]
        + ["--output", str(tmp_path / "bundle.npy")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    engine = np.load(tmp_path / "engine.npy")
    # the rows in file order: the engine on the same standardised rows
    test = np.zeros(178, bool)
    test[np.flatnonzero(per_class_test_rows(np.repeat([0, 1, 2], [59, 71, 48])))] = True
    ordered = np.empty_like(x)
    ordered[~test], ordered[test] = prepared.x_train, prepared.x_test
    np.testing.assert_allclose(engine, m.predict(ordered, verbose=0), atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "ort.npy"), engine, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "bundle.npy"), engine, atol=1e-5)


def test_evaluate_uses_the_models_preprocessing(wine_model):
    _, data, model = wine_model
    by_file = ok("evaluate", model, "--data", data)
    assert ok("evaluate", model, "--data", "wine") == by_file  # the shipped copy
    assert by_file.startswith("34 samples")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda rows: rows[3].__setitem__(2, ""), "line 4, column 'ash': a missing value"),
        (lambda rows: rows[5].__setitem__(0, "n/a"), "line 6, column 'alcohol': not a number"),
        (lambda rows: rows[7].__setitem__(13, ""), "line 8, column 'class': a missing label"),
        (lambda rows: rows[2].pop(), "line 3: 13 values for 14 columns"),
    ],
)
def test_bad_csv_rows_name_the_line_and_column(tmp_path, edit, match):
    rows = list(csv.reader(wine.csv_text().splitlines()))
    edit(rows)
    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    refused(match, "train", "mlp", "--data", bad, "-o", tmp_path / "m.edgemine", "--verbose", 0)


def test_predict_refuses_a_csv_without_a_feature(wine_model, tmp_path):
    _, data, model = wine_model
    _rewrite(data, tmp_path / "short.csv", [0, 2, 3])
    refused("has no column 'malic_acid'", "predict", model, tmp_path / "short.csv")
    refused("no label column 'kind'", "train", "mlp", "--data", data, "--label-column", "kind")


def test_unknown_label_at_evaluation_is_named(wine_model, tmp_path):
    _, data, model = wine_model
    text = data.read_text().replace(",class_2\n", ",class_9\n", 1)
    (tmp_path / "other.csv").write_text(text)
    refused(
        "label 'class_9' is not one of the model's classes",
        "evaluate",
        model,
        "--data",
        tmp_path / "other.csv",
    )


def test_image_folder_train_predict_and_resize(tmp_path):
    """A folder of class subfolders, grey and colour PNG and JPEG files of two sizes: refused
    until --image-size, then trained, and predict resizes a new image the same way."""
    rng = np.random.default_rng(0)
    for cls, level in (("dark", 40), ("light", 210)):
        folder = tmp_path / "imgs" / cls
        folder.mkdir(parents=True)
        for i in range(6):
            size = (10, 12) if i % 2 else (14, 16)
            pixels = np.clip(rng.normal(level, 20, size=(*size, 3)), 0, 255).astype(np.uint8)
            img = Image.fromarray(pixels, "RGB")
            img = img.convert("L") if i % 3 == 0 else img
            img.save(folder / (f"{i}.png" if i < 4 else f"{i}.jpg"))
    model = tmp_path / "m.edgemine"
    refused(
        "the images have different sizes", "train", "cnn", "--data", tmp_path / "imgs", "-o", model
    )
    ok("train", "cnn", "--data", tmp_path / "imgs", "--image-size", "8x10", "-o", model)
    ok("train", model, "--data", tmp_path / "imgs", "--epochs", 20, "--verbose", 0)
    m = load_model(model)
    assert m.input_shape == (8, 10, 3) and m.class_names == ["dark", "light"]
    assert m.preprocessing["resize"] is True
    probe = tmp_path / "probe.jpg"
    Image.fromarray(np.full((30, 20), 230, np.uint8), "L").save(probe)
    out = ok("predict", model, probe)
    assert out.split()[:2] == ["probe.jpg", "light"]
    refused(
        "expected HEIGHTxWIDTH",
        "train",
        "cnn",
        "--data",
        tmp_path / "imgs",
        "--image-size",
        "8by10",
    )


def test_digits_folder_equals_the_shipped_arrays(tmp_path):
    root = digits.write_folder(tmp_path / "digits")
    by_folder = user_data.load_image_folder(root)
    by_name = zoo.load_data("digits")
    assert by_folder.class_names == by_name.class_names == [str(i) for i in range(10)]
    # the folder lists each class's files in row order; the arrays keep file order
    for split in ("train", "test"):
        xf, yf = getattr(by_folder, f"x_{split}"), getattr(by_folder, f"y_{split}")
        xn, yn = getattr(by_name, f"x_{split}"), getattr(by_name, f"y_{split}")
        order = np.argsort(yn, kind="stable")
        np.testing.assert_array_equal(yf, yn[order])
        np.testing.assert_array_equal(xf, xn[order])


def test_text_csv(tmp_path):
    rows = [("text", "label")] + [
        (f"{'great good fine' if i % 2 else 'awful bad sad'} day {i}", "pos" if i % 2 else "neg")
        for i in range(60)
    ]
    data = tmp_path / "texts.csv"
    with data.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    spec = tmp_path / "text.json"
    spec.write_text(
        json.dumps(
            {
                "name": "text",
                "dataset_args": {"num_words": 50, "maxlen": 6},
                "model": {
                    "layers": [
                        {"class_name": "Embedding", "config": {"input_dim": 50, "output_dim": 4}},
                        {"class_name": "LSTM", "config": {"units": 4}},
                        {
                            "class_name": "Dense",
                            "config": {"units": "num_classes", "activation": "softmax"},
                        },
                    ]
                },
                "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
            }
        )
    )
    model = tmp_path / "t.edgemine"
    ok("train", spec, "--data", data, "--text-column", "text", "-o", model, "--epochs", 2)
    m = load_model(model)
    assert m.class_names == ["neg", "pos"] and m.preprocessing["maxlen"] == 6
    lines = tmp_path / "new.txt"
    lines.write_text("great good day\n")
    assert ok("predict", model, lines).startswith("new.txt:1")
    assert ok("evaluate", model, "--data", data).startswith("12 samples")


def test_spec_classes_come_from_the_data():
    spec = zoo.load_spec("mlp")
    assert zoo.build_model(spec, num_classes=7).layers[-1].units == 7
    with pytest.raises(zoo.SpecError, match="number of classes; give --data"):
        zoo.build_model(spec)
    refused("no data set known", "train", "mlp", "-o", "/tmp/never.edgemine")


def test_loaders_refuse_empty_and_odd_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images in class subfolders"):
        user_data.load_image_folder(tmp_path / "empty")
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="has a header but no rows"):
        user_data.load_table_csv(tmp_path / "h.csv")
    (tmp_path / "d.csv").write_text("a,a\n1,2\n")
    with pytest.raises(InputError, match="distinct, non-empty column names"):
        user_data.load_table_csv(tmp_path / "d.csv")


def test_motion_lstm_on_basicmotions(tmp_path):
    out = ok("train", "motion_lstm", "-o", tmp_path / "m.edgemine", "--epochs", 2, "--seed", 0)
    assert "test loss" in out
    m = load_model(tmp_path / "m.edgemine")
    assert m.input_shape == (100, 6) and m.class_names == [
        "Standing",
        "Running",
        "Walking",
        "Badminton",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec, data, at_least",
    [
        ("motion_lstm", "basicmotions", 0.95),
        ("motion_cnn", "basicmotions", 0.95),
        ("cnn", "digits", 0.95),
        ("mlp", "wine", 0.95),
    ],
)
def test_zoo_models_reach_their_accuracy(tmp_path, spec, data, at_least):
    out = ok(
        "train", spec, "--data", data, "-o", tmp_path / "m.edgemine", "--seed", 0, "--verbose", 0
    )
    accuracy = float(out.split("test loss")[1].split("accuracy")[1].split()[0])
    assert accuracy >= at_least, out
