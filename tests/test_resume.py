"""Exact resume: fit 1 epoch + checkpoint + load in a new process + fit 1 more equals fitting 2
epochs, bit for bit, with shuffling and dropout on (the API and ``edgemine train --resume``)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from test_cli import TINY_SPEC

from edgemine import callbacks as cb
from edgemine.cli import main
from edgemine.layers import (
    LSTM,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    MaxPooling2D,
)
from edgemine.models import Sequential, load_model
from edgemine.utils import set_random_seed

RESUME = """
import sys
import numpy as np
from edgemine.models import load_model
ckpt, data, out = sys.argv[1:]
d = np.load(data)
model = load_model(ckpt)
model.fit(d["x"], d["y"], epochs=2, batch_size=8, initial_epoch=model.epochs_trained, verbose=0)
model.save(out)
"""


def cnn() -> Sequential:
    model = Sequential(
        [
            Conv2D(3, 3, activation="relu", input_shape=(8, 8, 1)),
            BatchNormalization(),
            MaxPooling2D(),
            Flatten(),
            Dropout(0.3),
            Dense(3, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def lstm() -> Sequential:
    model = Sequential(
        [
            Embedding(30, 4, mask_zero=True, input_length=6),
            LSTM(5, dropout=0.2, recurrent_dropout=0.3),
            Dropout(0.25, seed=7),  # a layer with a generator of its own
            Dense(3, activation="softmax"),
        ]
    )
    model.compile("rmsprop", "sparse_categorical_crossentropy")
    return model


def data(kind: str):
    rng = np.random.default_rng(5)
    if kind == "cnn":
        x = rng.random((40, 8, 8, 1), dtype=np.float32)
    else:
        x = rng.integers(0, 30, (40, 6))
    return x, rng.integers(0, 3, 40)


def assert_same_training_state(a: Sequential, b: Sequential) -> None:
    assert a.epochs_trained == b.epochs_trained
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    sa, sb = a.optimizer.get_state(), b.optimizer.get_state()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key])
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_resume_in_a_new_process_equals_uninterrupted_training(tmp_path, kind):
    make = cnn if kind == "cnn" else lstm
    x, y = data(kind)
    set_random_seed(3)
    straight = make()
    straight.fit(x, y, epochs=2, batch_size=8, verbose=0)

    set_random_seed(3)
    part = make()
    ckpt = tmp_path / "ckpt.edgemine"
    part.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[cb.ModelCheckpoint(ckpt)])
    np.savez(tmp_path / "data.npz", x=x, y=y)
    out = tmp_path / "resumed.edgemine"
    subprocess.run(
        [sys.executable, "-c", RESUME, str(ckpt), str(tmp_path / "data.npz"), str(out)],
        check=True,
        timeout=600,
    )
    assert_same_training_state(load_model(out), straight)

    again = load_model(ckpt)  # a second resume of the same checkpoint, in this process
    set_random_seed(1234)  # which must not matter
    again.fit(x, y, epochs=2, batch_size=8, initial_epoch=1, verbose=0)
    assert_same_training_state(again, straight)


def test_the_model_generator_is_what_differs_between_epochs(tmp_path):
    """The check above can fail: a checkpoint whose generator state is dropped resumes with
    other shuffles and masks."""
    x, y = data("cnn")
    set_random_seed(3)
    straight = cnn()
    straight.fit(x, y, epochs=2, batch_size=8, verbose=0)
    set_random_seed(3)
    part = cnn()
    part.fit(x, y, epochs=1, batch_size=8, verbose=0)
    part.save(tmp_path / "c.edgemine")
    resumed = load_model(tmp_path / "c.edgemine")
    resumed.rng = None  # as the old checkpoints, which carried no generator
    resumed.fit(x, y, epochs=2, batch_size=8, initial_epoch=1, verbose=0)
    with pytest.raises(AssertionError):
        assert_same_training_state(resumed, straight)


# test_cli's tiny model with a Dropout layer, so that the resumed run draws masks
SPEC = copy.deepcopy(TINY_SPEC)
SPEC["model"]["layers"].insert(2, {"class_name": "Dropout", "config": {"rate": 0.3}})
SPEC["fit"]["batch_size"] = 8


def test_cli_resume_in_a_new_process_equals_uninterrupted_training(tmp_path):
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(SPEC))
    x, y = data("cnn")
    npz = tmp_path / "data.npz"
    np.savez(npz, x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    common = ["--data", str(npz), "--verbose", "0"]
    runner = CliRunner()
    full, ckpt = tmp_path / "full.edgemine", tmp_path / "ckpt.edgemine"
    r = runner.invoke(main, ["train", str(spec), "--seed", "4", "-o", str(full), *common])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main,
        ["train", str(spec), "--seed", "4", "--epochs", "1", "--checkpoint", str(ckpt),
         "-o", str(tmp_path / "part.edgemine"), *common],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    resumed = tmp_path / "resumed.edgemine"
    p = subprocess.run(
        [sys.executable, "-m", "edgemine.cli", "train", str(ckpt), "--resume", "--epochs", "2",
         "-o", str(resumed), *common],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "for 1 epoch(s)" in p.stdout
    assert_same_training_state(load_model(resumed), load_model(full))
