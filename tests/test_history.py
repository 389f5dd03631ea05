"""The training history kept in the model file: fit appends every epoch's logs, the writer
saves them, the loader checks them strictly, and a resumed fit continues them."""

from __future__ import annotations

import numpy as np
import pytest
from test_saving import edit_config, refuse

from edgemine.callbacks import record_epoch
from edgemine.layers import Dense
from edgemine.models import Sequential, load_model
from edgemine.saving._format import MAX_HISTORY_EPOCHS
from edgemine.utils import set_random_seed


def _model() -> Sequential:
    set_random_seed(0)
    model = Sequential([Dense(4, activation="relu", input_shape=(3,)), Dense(2, "softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.random((32, 3), dtype=np.float32)
    return x, (x.sum(1) > 1.5).astype(np.int64)


def test_fit_keeps_every_epoch_and_the_file_keeps_it(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, verbose=0, validation_data=(x[:8], y[:8]))
    log = model.history_log
    assert sorted(log) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert log["loss"] == model.history.history["loss"]
    model.fit(x, y, epochs=1, verbose=0)  # a second fit appends; no validation this time
    assert len(log["loss"]) == 3 and log["val_loss"][2] is None
    model.save(tmp_path / "m.edgemine")
    assert load_model(tmp_path / "m.edgemine").history_log == log


def test_resumed_fit_continues_the_history(tmp_path):
    x, y = _data()
    whole = _model()
    whole.fit(x, y, epochs=3, verbose=0)
    part = _model()
    part.fit(x, y, epochs=1, verbose=0)
    part.save(tmp_path / "ckpt.edgemine")
    resumed = load_model(tmp_path / "ckpt.edgemine")
    resumed.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
    assert resumed.history_log == whole.history_log
    assert len(resumed.history_log["loss"]) == 3


def test_record_epoch_bounds_the_history():
    log: dict = {}
    for i in range(MAX_HISTORY_EPOCHS + 5):
        record_epoch(log, {"loss": float(i)})
    assert len(log["loss"]) == MAX_HISTORY_EPOCHS and log["loss"][-1] == MAX_HISTORY_EPOCHS + 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, verbose=0)
    path = tmp_path_factory.mktemp("h") / "h.edgemine"
    model.save(path)
    return path.read_bytes()


def _set_history(history):
    def edit(config):
        config["training"]["history"] = history

    return edit


@pytest.mark.parametrize(
    ("history", "match"),
    [
        ([1.0], "training.history must be an object"),
        ({"loss": [0.5, 0.4], "accuracy": [0.5]}, "different lengths"),
        ({"loss": [0.5, "x"]}, r"training.history.loss\[1\] must be a number"),
        ({"loss": [0.5, True]}, r"training.history.loss\[1\] must be a number"),
        ({"loss": 0.5}, "training.history.loss must be a list"),
        ({"loss": [0.5] * (MAX_HISTORY_EPOCHS + 1)}, "at most"),
        ({f"k{i}": [] for i in range(65)}, "more than 64"),
        ({"": [0.5]}, "empty or overlong log name"),
    ],
)
def test_loader_refuses_a_bad_history(tmp_path, trained, history, match):
    refuse(tmp_path, edit_config(trained, _set_history(history)), match)


def test_an_old_file_without_history_loads_with_an_empty_one(tmp_path, trained):
    def drop(config):
        del config["training"]["history"]

    path = tmp_path / "old.edgemine"
    path.write_bytes(edit_config(trained, drop))
    assert load_model(path).history_log == {}
