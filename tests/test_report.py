"""The evaluation report: numpy metrics equal scikit-learn's (a test-only dependency) to 1e-6
on random predictions with ties and absent classes; the report's files; the CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_cli import TINY_SPEC

from edgemine.cli import main
from edgemine.report import (
    ReportError,
    classification_report,
    format_report,
    read_labels,
    write_report,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def random_case(seed: int, k: int):
    """Labels that leave out some classes and scores with many ties: softmax-like rows of
    small integers (k > 1), or one sigmoid per sample rounded to tenths (k == 1)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    width = 2 if k == 1 else k
    present = rng.choice(width, size=max(1, width - int(rng.integers(0, 3))), replace=False)
    y = rng.choice(present, size=n)
    if k == 1:
        return y, np.round(rng.random((n, 1)), 1)
    raw = rng.integers(0, 4, size=(n, k)).astype(np.float64) + 0.5 * (rng.random() < 0.5)
    raw[raw.sum(1) == 0] = 1.0
    return y, raw / raw.sum(1, keepdims=True)


def expected_auc(y: np.ndarray, score: np.ndarray):
    if score.shape[1] == 2:
        ok = len(np.unique(y)) == 2
        return sklearn_metrics.roc_auc_score(y, score[:, 1]) if ok else None
    if len(np.unique(y)) == score.shape[1]:
        return sklearn_metrics.roc_auc_score(y, score, multi_class="ovr", average="macro")
    aucs = [  # classes absent from y have no curve: the macro mean of the others
        sklearn_metrics.roc_auc_score(y == c, score[:, c])
        for c in range(score.shape[1])
        if 0 < (y == c).sum() < len(y)
    ]
    return float(np.mean(aucs)) if len(aucs) > 1 else None


def check_against_sklearn(y, score, labels=None):
    ours = classification_report(y, score, labels=labels)
    full = np.concatenate([1 - score, score], 1) if score.shape[1] == 1 else score
    pred = (full[:, 1] >= 0.5).astype(int) if score.shape[1] == 1 else full.argmax(1)
    theirs = sklearn_metrics.classification_report(
        y, pred, labels=labels, output_dict=True, zero_division=0
    )
    used = labels if labels is not None else np.union1d(y, pred)
    assert ours["class_names"] == [str(c) for c in used]
    for c in used:
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):  # fmt: skip
            assert ours["per_class"][str(c)][key] == pytest.approx(theirs[str(c)][their_key], abs=1e-6)  # fmt: skip
        assert ours["per_class"][str(c)]["support"] == theirs[str(c)]["support"]
    for key, their_key in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        for m, their_m in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert ours[key][m] == pytest.approx(theirs[their_key][their_m], abs=1e-6)
    assert ours["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y, pred), abs=1e-6)
    cm = sklearn_metrics.confusion_matrix(y, pred, labels=used)
    assert ours["confusion_matrix"] == cm.tolist()
    auc = expected_auc(y, full)
    assert (ours["roc_auc"] is None) == (auc is None)
    if auc is not None:
        assert ours["roc_auc"] == pytest.approx(auc, abs=1e-6)
    assert ours["n_samples"] == len(y)
    return ours, pred


@pytest.mark.parametrize("k", [1, 2, 3, 5, 10])
@pytest.mark.parametrize("seed", range(12))
def test_metrics_equal_sklearn(seed, k):
    y, score = random_case(seed, k)
    ours, pred = check_against_sklearn(y, score)
    check_against_sklearn(y, score, labels=list(range(max(k, 2))))
    text = sklearn_metrics.classification_report(y, pred, digits=4, zero_division=0)
    assert format_report(ours).split("\n")[:-2] == [line.rstrip() for line in text.split("\n")][:-1]


def test_auc_ties_count_one_half():
    y = np.array([0, 1, 0, 1])
    score = np.array([[0.5, 0.5]] * 4)
    assert classification_report(y, score)["roc_auc"] == 0.5
    assert classification_report([0, 0], score[:2])["roc_auc"] is None  # one class


@pytest.mark.parametrize(
    ("y", "score", "match"),
    [
        ([0, 1], [[0.5, 0.5]], "2 labels for 1 samples"),
        ([0, 3], [[0.5, 0.5]] * 2, "class 3, but the model has 2 classes"),
        ([0, 0.5], [[0.5, 0.5]] * 2, "whole class numbers"),
        ([0, 1], [[np.nan, 0.5]] * 2, "NaN"),
    ],
)
def test_bad_labels_and_scores_are_named(y, score, match):
    with pytest.raises(ReportError, match=match):
        classification_report(y, score)


def assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] > 100 and im.size[1] > 100


def test_write_report_files(tmp_path):
    y, score = random_case(3, 3)
    images = np.random.default_rng(0).random((len(y), 6, 6, 1))
    history = {"loss": [1.0, 0.5, None], "val_loss": [1.1, 0.7, 0.6], "accuracy": [0.2, 0.5, 0.6]}
    names = ["a", "b<c", "d"]
    r = write_report(tmp_path, y, score, names, history, images)
    assert r["files"] == ["metrics.json", "confusion_matrix.png", "history.png", "misclassified.png", "report.html"]  # fmt: skip
    for name in r["files"][1:-1]:
        assert_png(tmp_path / name)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == {"class_names", "accuracy", "confusion_matrix", "per_class", "macro_avg", "weighted_avg", "roc_auc", "n_samples"}  # fmt: skip
    page = (tmp_path / "report.html").read_text()
    assert "b&lt;c" in page and 'src="history.png"' in page and "b<c" not in page


def test_missing_matplotlib_gives_one_line(tmp_path, monkeypatch, cli_files):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'edgemine\[report\]'"):
        write_report(tmp_path, [0, 1], [[0.9, 0.1], [0.2, 0.8]])
    model, data = cli_files
    r = CliRunner().invoke(main, ["evaluate", str(model), "--data", str(data), "--report", str(tmp_path / "r")])  # fmt: skip
    assert r.exit_code == 1
    assert r.output.strip().count("\n") == 0, r.output
    assert "matplotlib" in r.output and "edgemine[report]" in r.output
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    (tmp / "tiny.json").write_text(json.dumps(TINY_SPEC))
    data = tmp / "data.npz"
    x_test, y_test = rng.random((16, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 16)
    np.savez(data, x_train=rng.random((48, 8, 8, 1), dtype=np.float32), y_train=rng.integers(0, 3, 48), x_test=x_test, y_test=y_test)  # fmt: skip
    np.save(tmp / "x.npy", x_test)
    np.save(tmp / "y.npy", y_test)
    model = tmp / "tiny.edgemine"
    args = ["train", str(tmp / "tiny.json"), "--data", str(data), "-o", str(model)]
    r = CliRunner().invoke(main, [*args, "--validation-split", "0.25", "--verbose", "0"])
    assert r.exit_code == 0, r.output
    return model, data


def test_cli_evaluate_report_and_predict_labels(tmp_path, cli_files):
    model, data = cli_files
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["evaluate", str(model), "--data", str(data), "--report", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "weighted avg" in r.output and "roc auc" in r.output
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["n_samples"] == 16
    for name in ("confusion_matrix.png", "history.png"):
        assert_png(out / name)
    assert (out / "report.html").is_file()
    x, y = model.parent / "x.npy", model.parent / "y.npy"
    r = CliRunner().invoke(main, ["predict", str(model), str(x), "--labels-from", str(y)])
    assert r.exit_code == 0, r.output
    table = r.output[r.output.index("precision") :]
    assert f"{saved['accuracy']:.4f}" in table  # the same inputs and labels as evaluate's
    r = CliRunner().invoke(main, ["predict", str(model), str(x), "--labels-from", str(data)])
    assert r.exit_code == 0, r.output  # a .npz's y_test
    np.save(tmp_path / "short.npy", np.zeros(3, int))
    r = CliRunner().invoke(main, ["predict", str(model), str(x), "--labels-from", str(tmp_path / "short.npy")])  # fmt: skip
    assert r.exit_code == 1 and "3 labels for 16 samples" in r.output


def test_read_labels_refuses_pickles_and_names_arrays(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ReportError, match="not a readable"):
        read_labels(tmp_path / "obj.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.zeros(2))
    with pytest.raises(ReportError, match="name the labels array 'y'"):
        read_labels(tmp_path / "two.npz")


def test_wine_report_equals_sklearn_on_the_same_predictions(tmp_path):
    """The issue's check: a model trained on the bundled wine CSV; metrics.json equals
    scikit-learn on the model's predictions for the test split."""
    from edgemine import zoo
    from edgemine.models import load_model

    model_path, out = tmp_path / "wine.edgemine", tmp_path / "wine_report"
    args = ["train", "mlp", "--data", "wine", "-o", str(model_path), "--epochs", "10"]
    r = CliRunner().invoke(main, [*args, "--seed", "0", "--verbose", "0"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["evaluate", str(model_path), "--report", str(out)])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "metrics.json").read_text())
    model = load_model(model_path)
    d = zoo.load_data("wine", pre=model.preprocessing, class_names=model.class_names)
    score = model.predict(d.x_test)
    pred = score.argmax(1)
    theirs = sklearn_metrics.classification_report(d.y_test, pred, output_dict=True, zero_division=0)  # fmt: skip
    assert saved["n_samples"] == 34 and saved["class_names"] == ["class_0", "class_1", "class_2"]
    for k, name in enumerate(saved["class_names"]):
        for key, their_key in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):  # fmt: skip
            assert saved["per_class"][name][key] == pytest.approx(theirs[str(k)][their_key], abs=1e-6)  # fmt: skip
    assert saved["accuracy"] == pytest.approx(theirs["accuracy"], abs=1e-6)
    assert saved["confusion_matrix"] == sklearn_metrics.confusion_matrix(d.y_test, pred).tolist()
    auc = sklearn_metrics.roc_auc_score(d.y_test, score.astype(np.float64) / score.sum(1, keepdims=True), multi_class="ovr")  # fmt: skip
    assert saved["roc_auc"] == pytest.approx(auc, abs=1e-6)
