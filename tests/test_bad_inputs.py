"""A catalogue of bad inputs: each must be refused with a message that names the problem.

Two tables, one row per bad input: ``API_CASES`` (a call that must raise) and ``CLI_CASES``
(``edgemine`` arguments that must exit non-zero with one line naming the problem). Add rows,
not test functions: other areas (bundle, predict, export) append their own rows here.
Several rows are regressions of issue 12: before its fixes they were answered silently
(``epochs=2.7`` ran 2 epochs, id ``2**32 + 3`` predicted as id 3, ``--epochs 0`` trained nothing
and saved, a bad ``-o`` failed only after training).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from click.testing import CliRunner

from edgemine import zoo
from edgemine.cli import main
from edgemine.datasets import train_validation_split, tweets
from edgemine.layers import Dense, Embedding, Flatten
from edgemine.models import Sequential, load_model

RNG = np.random.default_rng(0)
X = RNG.random((8, 4), dtype=np.float32)
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
IDS = RNG.integers(0, 10, size=(8, 3))


def dense_model() -> Sequential:
    model = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def text_model() -> Sequential:
    model = Sequential(
        [Embedding(10, 2, input_length=3), Flatten(), Dense(3, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def with_value(a: np.ndarray, value, index=(0, 0)) -> np.ndarray:
    """A copy of ``a`` (as float64 or int64, wide enough for ``value``) with one bad entry."""
    out = a.astype(np.float64 if isinstance(value, float) else np.int64)
    out[index] = value
    return out


@dataclass
class ApiCase:
    name: str
    call: Callable[[], object]
    match: str  # a regular expression the message must contain


def _fit(**kw):
    return lambda: dense_model().fit(**{"x": X, "y": Y, "verbose": 0, **kw})


def _ids(method: str, ids, **kw):
    def call():
        model = text_model()
        if method == "predict":
            return model.predict(ids)
        if method == "evaluate":
            return model.evaluate(ids, Y, verbose=0)
        return model.fit(ids, Y, epochs=1, verbose=0, **kw)

    return call


API_CASES = [
    ApiCase("fit epochs=2.7", _fit(epochs=2.7), "epochs must be an integer >= 0, got 2.7"),
    ApiCase("fit epochs='3'", _fit(epochs="3"), "epochs must be an integer >= 0, got '3'"),
    ApiCase("fit epochs=-1", _fit(epochs=-1), "epochs must be an integer >= 0"),
    ApiCase("fit epochs=True", _fit(epochs=True), "epochs must be"),
    ApiCase("fit initial_epoch=1.5", _fit(initial_epoch=1.5), "initial_epoch must be"),
    ApiCase("fit batch_size=0", _fit(batch_size=0), "batch_size must be a positive integer"),
    ApiCase("fit batch_size=2.5", _fit(batch_size=2.5), "batch_size must be a positive integer"),
    ApiCase("fit batch_size='8'", _fit(batch_size="8"), "batch_size must be a positive integer"),
    ApiCase("fit x with NaN", _fit(x=with_value(X, np.nan)), "x contains NaN or infinite"),
    ApiCase("fit x with inf", _fit(x=with_value(X, np.inf)), "x contains NaN or infinite"),
    ApiCase("fit y with NaN", _fit(y=with_value(Y, np.nan, 0)), "y contains NaN or infinite"),
    ApiCase("fit y with inf", _fit(y=with_value(Y, -np.inf, 0)), "y contains NaN or infinite"),
    ApiCase("fit label 3 of 3 classes", _fit(y=with_value(Y, 3, 0)), "label 3, out of range"),
    ApiCase("fit label -1", _fit(y=with_value(Y, -1, 0)), "label -1, out of range"),
    ApiCase("fit label 1.5", _fit(y=with_value(Y, 1.5, 0)), "whole numbers"),
    ApiCase("fit x of the wrong shape", _fit(x=X[:, :3]), r"shape \(8, 3\).*expects"),
    ApiCase("fit x and y lengths differ", _fit(y=Y[:5]), "5 samples but x has 8"),
    ApiCase("fit x of strings", _fit(x=np.full((8, 4), "a")), "must be numeric"),
    ApiCase("fit x is None", _fit(x=None), "x is None"),
    ApiCase("fit x is empty", _fit(x=X[:0], y=Y[:0]), "x is empty"),
    ApiCase("fit validation_split=1.0", _fit(validation_split=1.0), "validation_split"),
    ApiCase("fit validation_split='0.1'", _fit(validation_split="0.1"), "must be a number"),
    ApiCase("fit validation_data=X", _fit(validation_data=X), "validation_data must be a tuple"),
    ApiCase(
        "fit validation y with NaN",
        _fit(validation_data=(X, with_value(Y, np.nan, 1))),
        "validation y contains NaN",
    ),
    ApiCase("predict x with NaN", lambda: dense_model().predict(with_value(X, np.nan)), "NaN"),
    ApiCase(
        "evaluate x with inf",
        lambda: dense_model().evaluate(with_value(X, np.inf), Y, verbose=0),
        "NaN or infinite",
    ),
    ApiCase(
        "predict batch_size=0", lambda: dense_model().predict(X, batch_size=0), "batch_size must"
    ),
    ApiCase(
        "predict id 2**32 + 3 (wrapped to 3 before)",
        _ids("predict", with_value(IDS, 2**32 + 3)),
        "token id 4294967299 in x is out of range for input_dim=10",
    ),
    ApiCase(
        "fit id 2**32 + 3 (wrapped to 3 before)",
        _ids("fit", with_value(IDS, 2**32 + 3)),
        "token id 4294967299 in x is out of range",
    ),
    ApiCase(
        "evaluate id 2**40", _ids("evaluate", with_value(IDS, 2**40)), "token id 1099511627776"
    ),
    ApiCase(
        "predict id 2**31 (beyond int32)", _ids("predict", with_value(IDS, 2**31)), "2147483648"
    ),
    ApiCase(
        "predict uint64 id 2**63",
        _ids("predict", with_value(IDS, 2**63 - 1).astype(np.uint64) + np.uint64(1)),
        "token id 9223372036854775808",
    ),
    ApiCase("predict id 10 == input_dim", _ids("predict", with_value(IDS, 10)), r"\[0, 9\]"),
    ApiCase(
        "predict id -1", _ids("predict", with_value(IDS, -1)), "token id -1 in x is out of range"
    ),
    ApiCase("predict float id 1.5", _ids("predict", with_value(IDS, 1.5)), "non-integer floats"),
    ApiCase("predict float id NaN", _ids("predict", with_value(IDS, np.nan)), "non-integer"),
    ApiCase("predict float id 4e9", _ids("predict", with_value(IDS, 4e9)), "4000000000"),
    ApiCase(
        "fit validation ids out of range",
        _ids("fit", IDS, validation_data=(with_value(IDS, 11), Y)),
        "token id 11 in validation x",
    ),
    ApiCase("zoo spec that does not exist", lambda: zoo.load_spec("no_such_spec"), "no such file"),
    ApiCase(
        "validation fraction 0", lambda: train_validation_split(X, Y, 0.0), "validation fraction"
    ),
    ApiCase(
        "stratified split of real-valued targets",
        lambda: train_validation_split(X, X[:, 0], 0.5),
        "needs class labels",
    ),
    ApiCase("tweets maxlen=0", lambda: tweets.load_data(maxlen=0), "maxlen must be >= 1"),
]


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.name)
def test_api_refuses(case: ApiCase):
    with pytest.raises((ValueError, TypeError)) as info:
        case.call()
    message = str(info.value)
    assert re.search(case.match, message), message


# ---------------------------------------------------------------------------------------
# the command line

SPEC = {
    "name": "tiny",
    "dataset": "mnist",
    "model": {"layers": [{"class_name": "Dense", "config": {"units": 3, "input_shape": [4]}}]},
    "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
    "fit": {"epochs": 1, "batch_size": 4},
}


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    """Files the CLI rows name as {spec}, {data}, {model}, ...; {tmp} is their folder."""
    tmp = tmp_path_factory.mktemp("bad_inputs")
    spec = tmp / "tiny.json"
    spec.write_text(json.dumps(SPEC))
    (tmp / "broken.json").write_text("{not json")
    np.savez(tmp / "data.npz", x_train=X, y_train=Y, x_test=X, y_test=Y)
    np.savez(tmp / "nan.npz", x_train=with_value(X, np.nan), y_train=Y)
    np.savez(tmp / "label9.npz", x_train=X, y_train=with_value(Y, 9, 0))
    np.savez(tmp / "test_only.npz", x_test=X, y_test=Y)
    np.savez(tmp / "x_test_only.npz", x_test=X)
    np.savez(tmp / "nothing.npz", z=X)
    (tmp / "bad.edgemine").write_bytes(b"not a zip")
    model = dense_model()
    model.fit(X, Y, epochs=2, verbose=0)
    model.save(tmp / "model.edgemine")
    return tmp


CLI_CASES = [
    ("train --epochs 0", "train {spec} --data {data} --epochs 0", "0 is not in the range x>=1"),
    ("train --epochs 2.5", "train {spec} --data {data} --epochs 2.5", "is not a valid integer"),
    ("train --batch-size 0", "train {spec} --data {data} --batch-size 0", "--batch-size"),
    ("train -o in a missing folder", "train {spec} --data {data} -o {tmp}/no/m.edgemine", "exist"),
    ("train -o is a folder", "train {spec} --data {data} -o {tmp}", "is a folder"),
    ("train -o under a file", "train {spec} --data {data} -o {data}/m.edgemine", "not a folder"),
    ("train -o .json", "train {spec} --data {data} -o {tmp}/m.json", "must not be a .json"),
    ("train --checkpoint missing folder", "train {spec} --checkpoint {tmp}/no/c.e", "not exist"),
    ("train an unknown zoo name", "train no_such_spec", "not a zoo spec"),
    ("train a broken spec", "train {tmp}/broken.json", "not valid JSON"),
    ("train --resume a spec", "train {spec} --resume --epochs 3", "--resume continues"),
    ("train --resume without --epochs", "train {model} --resume", "--resume needs --epochs"),
    ("train --resume finished", "train {model} --resume --epochs 2", "already trained 2 epoch"),
    ("train --data unknown", "train {spec} --data nonsense", "unknown data set"),
    ("train --data test split only", "train {spec} --data {tmp}/test_only.npz", "no x_train"),
    ("train --data x_test without y_test", "train {spec} --data {tmp}/x_test_only.npz", "only one"),
    ("train --data without arrays", "train {spec} --data {tmp}/nothing.npz", "needs arrays"),
    ("train --data with NaN", "train {spec} --data {tmp}/nan.npz", "NaN"),
    ("train --data label out of range", "train {spec} --data {tmp}/label9.npz", "label 9"),
    ("train --validation-split 1", "train {spec} --data {data} --validation-split 1", "range"),
    ("evaluate a file that is not a model", "evaluate {tmp}/bad.edgemine", "not an edgemine"),
    ("evaluate a missing file", "evaluate {tmp}/missing.edgemine", "does not exist"),
    ("inspect a missing .onnx", "inspect {tmp}/missing.onnx", "no such file"),
    ("pipeline an unknown spec", "pipeline --spec no_such_spec -o {tmp}/p", "no such file"),
    ("an unknown command", "nonsense", "No such command"),
]


@pytest.mark.parametrize("name, args, match", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses(cli_files, name, args, match):
    values = {
        "tmp": cli_files,
        "spec": cli_files / "tiny.json",
        "data": cli_files / "data.npz",
        "model": cli_files / "model.edgemine",
    }
    argv = [a.format(**values) for a in args.split()]
    r = CliRunner().invoke(main, [*argv, *(["--verbose", "0"] if argv[0] == "train" else [])])
    assert r.exit_code != 0, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    assert match in lines[0]
    assert load_model(values["model"]).epochs_trained == 2  # nothing overwrote it
