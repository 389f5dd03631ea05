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
