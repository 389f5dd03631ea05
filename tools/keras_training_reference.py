"""Print the Keras 3 numbers that ``tests/test_training_details.py``,
``tests/test_multi_output.py`` and ``tests/test_dataset_utils.py`` hard-code: losses and metrics
with sample and class weights, a sequence cross-entropy and one SGD step on it, History keys, a
two-output model's logs, evaluate order and one SGD step, and the files and order
``index_directory`` picks. Needs Keras 3 with the torch backend (not needed by edgemine or CI)::

    python3 -m venv /tmp/kvenv3 && /tmp/kvenv3/bin/pip install keras torch==2.13.0 pillow
    KERAS_BACKEND=torch /tmp/kvenv3/bin/python tools/keras_training_reference.py IMAGE_DIR

IMAGE_DIR is the folder the ``image_dir`` fixture of tests/test_dataset_utils.py builds (its
file names matter, not its pixels). The models and data are built exactly as in the tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import keras_reference_data as shared  # noqa: E402  (the tests' data and models)
from keras_reference_data import (  # noqa: E402
    TWO_COMPILE,
    TWO_COMPILE_WEIGHTED,
    X3,
    Y3,
    YC,
    YR,
    W,
    X,
    Y,
)


def sequence_model(loss):
    return shared.sequence_model(keras, loss)


def classifier():
    return shared.classifier(keras)


def numbers() -> dict:
    out = {}
    model = sequence_model("categorical_crossentropy")
    out["sequence"] = model.evaluate(X3, np.eye(4)[Y3], verbose=0, return_dict=True)
    model.train_on_batch(X3, np.eye(4)[Y3])
    out["kernel_row0_after_sgd"] = model.get_weights()[0][0].tolist()
    model = sequence_model("sparse_categorical_crossentropy")
    out["sparse_sequence"] = model.evaluate(X3, Y3, verbose=0, return_dict=True)
    model = classifier()
    out["weighted"] = model.evaluate(X, Y, sample_weight=W, verbose=0, return_dict=True)
    out["weighted_list"] = model.evaluate(X, Y, sample_weight=W, verbose=0)
    out["unweighted"] = model.evaluate(X, Y, verbose=0, return_dict=True)
    hist = classifier().fit(
        X, Y, class_weight={0: 2.0, 2: 0.5}, batch_size=6, shuffle=False, verbose=0
    )
    out["class_weight_fit"] = {k: v[0] for k, v in hist.history.items()}
    hist = classifier().fit(
        X, Y, sample_weight=W, batch_size=4, shuffle=False, verbose=0, validation_data=(X, Y, W)
    )
    out["sample_weight_fit"] = {k: v[0] for k, v in hist.history.items()}
    out["two_outputs"] = two_output_numbers()
    return out


def two_output_numbers() -> dict:
    """The two-output model's logs, evaluate list, one SGD step and a weighted fit."""
    out = {}
    model = shared.two_output_model(keras, **TWO_COMPILE)
    out["evaluate"] = model.evaluate(X, [YR, YC], verbose=0, return_dict=True)
    out["evaluate_list"] = model.evaluate(X, [YR, YC], verbose=0)
    out["train_on_batch"] = model.train_on_batch(X, [YR, YC])
    out["weights_after_step"] = [w.tolist() for w in model.get_weights()]
    hist = shared.two_output_model(keras, **TWO_COMPILE).fit(
        X, [YR, YC], sample_weight=W, batch_size=4, shuffle=False, verbose=0,
        validation_data=(X, [YR, YC], W),
    )  # fmt: skip
    out["fit_sample_weight"] = {k: v[0] for k, v in hist.history.items()}
    model = shared.two_output_model(keras, **TWO_COMPILE_WEIGHTED)
    # Keras 3.15 fails on y as a dict together with sample_weight here: the list form
    out["weighted_evaluate"] = model.evaluate(
        X, [YR, YC], sample_weight=W, verbose=0, return_dict=True
    )
    out["weighted_evaluate_list"] = model.evaluate(X, [YR, YC], sample_weight=W, verbose=0)
    return out


def files(image_dir: str) -> dict:
    from keras.src.utils import dataset_utils

    paths, labels, names = dataset_utils.index_directory(
        image_dir, "inferred", formats=(".bmp", ".gif", ".jpeg", ".jpg", ".png"),
        class_names=None, shuffle=True, seed=1337,
    )  # fmt: skip
    out = {"classes": names}
    for subset in ("training", "validation"):
        part, _ = dataset_utils.get_training_or_validation_split(paths, labels, 0.25, subset)
        out[subset] = [os.path.relpath(p, image_dir) for p in part]
    return out


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # Keras's messages; stdout is the JSON
        result = numbers()
        if len(sys.argv) > 1:
            result["files"] = files(sys.argv[1])
    print(json.dumps(result, indent=1))
