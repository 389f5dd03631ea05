"""The fixed inputs and weights that tests/test_training_details.py gives edgemine and
tools/keras_training_reference.py gives Keras 3 (numpy only, so both environments import it)."""

from __future__ import annotations

import numpy as np

RNG = np.random.default_rng(0)
X3 = RNG.normal(size=(4, 3, 5)).astype("float32")  # a (batch, time, features) input
K3 = RNG.normal(size=(5, 4)).astype("float32") * 0.5  # Dense(4, softmax) applied per step
B3 = np.linspace(-0.2, 0.2, 4).astype("float32")
Y3 = RNG.integers(0, 4, (4, 3))  # a class per time step
X = RNG.normal(size=(6, 3)).astype("float32")
K = RNG.normal(size=(3, 3)).astype("float32")  # Dense(3, softmax), zero bias
Y = np.array([0, 1, 2, 1, 0, 2])
W = np.array([1.0, 2.0, 0.5, 0.0, 3.0, 1.0], "float32")  # sample weights


def sequence_model(keras, loss):
    """Dense(4, softmax) per step of (3, 5) sequences, the weights above, SGD(0.1): built the
    same way by the tests (``keras`` = edgemine) and by tools/keras_training_reference.py
    (Keras 3)."""
    model = keras.Sequential([keras.Input((3, 5)), keras.layers.Dense(4, activation="softmax")])
    model.set_weights([K3, B3])
    model.compile(keras.optimizers.SGD(0.1), loss, metrics=["accuracy"])
    return model


def classifier(keras):
    """Dense(3, softmax) on 3 features, the weights above, plain and weighted metrics."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="softmax")])
    model.set_weights([K, np.zeros(3, "float32")])
    model.compile(
        keras.optimizers.SGD(0.1),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        weighted_metrics=["accuracy", "sparse_categorical_accuracy"],
    )
    return model


# a model with two outputs: a regression head and a softmax head on a shared hidden layer
RNG2 = np.random.default_rng(1)  # its own generator: the arrays above stay as they were
TWO_WEIGHTS = [
    RNG2.normal(size=(3, 4)).astype("float32") * 0.7,  # h: Dense(4, relu)
    np.linspace(0.1, 0.4, 4).astype("float32"),
    RNG2.normal(size=(4, 1)).astype("float32") * 0.7,  # reg: Dense(1)
    np.array([0.05], "float32"),
    RNG2.normal(size=(4, 3)).astype("float32") * 0.7,  # cls: Dense(3, softmax)
    np.array([0.1, -0.1, 0.0], "float32"),
]
YR = RNG2.normal(size=(6, 1)).astype("float32")  # regression targets
YC = np.eye(3, dtype="float32")[Y]  # one-hot classes


def two_output_model(keras, **compile_args):
    """x -> Dense(4, relu) -> [Dense(1) named "reg", Dense(3, softmax) named "cls"], the
    weights above, SGD(0.1); compiled with ``compile_args`` (loss and the rest)."""
    x = keras.Input((3,), name="x")
    h = keras.layers.Dense(4, activation="relu", name="h")(x)
    reg = keras.layers.Dense(1, name="reg")(h)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    model = keras.Model(x, [reg, cls])
    model.set_weights(TWO_WEIGHTS)
    model.compile(keras.optimizers.SGD(0.1), **compile_args)
    return model


TWO_COMPILE = {  # the reference compile: losses, loss weights and metrics per output
    "loss": ["mse", "categorical_crossentropy"],
    "loss_weights": [0.5, 2.0],
    "metrics": [["mae"], ["accuracy"]],
}
TWO_COMPILE_WEIGHTED = {  # by output name; a plain and a weighted metric of one name
    "loss": {"cls": "categorical_crossentropy", "reg": "mse"},
    "loss_weights": {"reg": 1.5, "cls": 0.25},
    "metrics": {"cls": "accuracy", "reg": ["mae", "mse"]},
    "weighted_metrics": {"cls": ["accuracy"]},
}
