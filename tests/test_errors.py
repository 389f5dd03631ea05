"""Bad input gets a Python exception that names the problem (never a Numba typing dump)."""

from __future__ import annotations

import numpy as np
import pytest

from edgemine.layers import Conv2D, Dense, Flatten, MaxPooling2D
from edgemine.models import Sequential
from edgemine.utils import to_categorical


def cnn():
    m = Sequential(
        [
            Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)),
            MaxPooling2D(),
            Flatten(),
            Dense(3, activation="softmax"),
        ]
    )
    m.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return m


X = np.zeros((4, 6, 6, 1), np.float32)
Y = to_categorical([0, 1, 2, 0], 3)


@pytest.mark.parametrize(
    "x,msg",
    [
        (np.zeros((4, 6, 6), np.float32), r"shape \(4, 6, 6\).*expects \(batch, 6, 6, 1\)"),
        (np.zeros((4, 7, 6, 1), np.float32), "expects"),
        (np.zeros((6, 6, 1), np.float32), "expects"),
        (np.zeros((0, 6, 6, 1), np.float32), "empty"),
        (np.full((4, 6, 6, 1), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_x_shapes_and_values(x, msg):
    with pytest.raises(ValueError, match=msg):
        cnn().predict(x)


def test_bad_x_dtype():
    with pytest.raises(TypeError, match="numeric"):
        cnn().predict(np.full((4, 6, 6, 1), "a"))
    with pytest.raises(TypeError, match="numeric"):
        cnn().fit([[object()]], Y)


@pytest.mark.parametrize(
    "y,msg",
    [
        (np.array([0, 1, 2, 0]), "one-hot encode"),
        (to_categorical([0, 1, 2], 3), "3 samples but x has 4"),
        (np.full((4, 3), np.nan), "NaN"),
        (to_categorical([0, 1, 2, 0], 4), r"shape \(4, 4\)"),
        (np.full((4, 3), 2.0), r"\[0, 1\]"),
    ],
)
def test_bad_labels(y, msg):
    with pytest.raises(ValueError, match=msg):
        cnn().fit(X, y, verbose=0)


@pytest.mark.parametrize(
    "y,msg",
    [
        ([0, 1, 3, 0], "label 3, out of range for 3 classes"),
        ([0, -1, 2, 0], "label -1"),
        ([0, 1.5, 2, 0], "whole"),
        ([0, np.nan, 1, 1], "NaN"),
    ],
)
def test_bad_sparse_labels(y, msg):
    m = cnn()
    m.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=msg):
        m.fit(X, np.array(y), verbose=0)


@pytest.mark.parametrize("bs", [0, -1, 1.5, True])
def test_bad_batch_size(bs):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        cnn().fit(X, Y, batch_size=bs, verbose=0)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        Dense(3, activation="relux")
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'"):
        cnn().compile("adamx", "mse")
    with pytest.raises(ValueError, match="unknown loss 'msx'"):
        cnn().compile("adam", "msx")
    with pytest.raises(ValueError, match="unknown metric"):
        cnn().compile("adam", "mse", metrics=["f1x"])
    with pytest.raises(ValueError, match="unknown initializer"):
        Dense(3, kernel_initializer="glorot_sideways")
    with pytest.raises(TypeError, match="unknown argument.*filterz"):
        Conv2D(filterz=3, filters=2, kernel_size=3)


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="padding"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2D(2, (3, 0))
    with pytest.raises(ValueError, match="units"):
        Dense(0)
    with pytest.raises(ValueError, match="smaller than kernel"):
        Sequential([Conv2D(2, 5, input_shape=(3, 3, 1))])
    with pytest.raises(ValueError, match="Conv2D expects"):
        Sequential([Conv2D(2, 3, input_shape=(8, 8))])


def test_untrained_use():
    m = Sequential([Dense(2, input_shape=(3,))])
    with pytest.raises(RuntimeError, match="compiled first"):
        m.fit(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="needs a loss"):
        m.compile("adam")
    empty = Sequential()
    with pytest.raises(ValueError, match="no layers"):
        empty.build((None, 3))
