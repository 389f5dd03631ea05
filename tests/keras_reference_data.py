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
