"""Small real edgemine models exported to ONNX, for the deployment tests.

Each is built with edgemine's layers, given seeded weights (scaled up so that the classes are
well apart) and written by ``edgemine.onnx.export``, so quantization, bundling and the runtime
are tested on exactly what users deploy (the text model is a masked LSTM: ``mask_zero=True``).
``tools/pi_check_prepare.py --toy cnn|lstm`` uses them too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgemine import layers
from edgemine.models import Sequential
from edgemine.onnx import export
from edgemine.utils import set_random_seed
from edgemine.zoo import MNIST_PREPROCESSING

OPSET = 17
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def _export(model: Sequential, path: str | Path, scales: list[float]) -> Path:
    model.set_weights([w * np.float32(s) for w, s in zip(model.get_weights(), scales)])
    return export(model, path, opset=OPSET)


def make_cnn(path: str | Path, filters: int = 8, classes: int = 10, seed: int = 0) -> Path:
    """The seed CNN's shape: 28x28x1 -> Conv2D(relu) -> MaxPooling2D -> Flatten -> Dense."""
    set_random_seed(seed)
    model = Sequential(
        [
            layers.Conv2D(filters, (3, 3), activation="relu", input_shape=(28, 28, 1)),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(classes, activation="softmax"),
        ]
    )
    model.preprocessing = dict(MNIST_PREPROCESSING)
    model.class_names = [str(i) for i in range(classes)]
    rng = np.random.default_rng(seed)  # non-zero biases, as after training
    model.layers[0].bias.value[:] = rng.normal(0, 0.05, filters)
    return _export(model, path, [1, 1, 4, 1])


def make_lstm(
    path: str | Path,
    vocab: int = 1000,
    maxlen: int = 20,
    dim: int = 16,
    units: int = 32,
    classes: int = 3,
    seed: int = 0,
) -> Path:
    """A text model: Embedding(mask_zero=True) -> LSTM -> Dense(softmax), int64 token ids."""
    set_random_seed(seed)
    model = Sequential(
        [
            layers.Embedding(vocab, dim, input_length=maxlen, mask_zero=True),
            layers.LSTM(units),
            layers.Dense(classes, activation="softmax"),
        ]
    )
    model.class_names = ["negative", "neutral", "positive"][:classes]
    model.preprocessing = {
        "kind": "text",
        "maxlen": maxlen,
        "num_words": vocab,
        "lower": True,
        "filters": KERAS_FILTERS,
        "split": " ",
        "padding": "pre",
        "truncating": "pre",
    }
    return _export(model, path, [20, 2, 2, 1, 3, 1])


def toy_word_index(vocab: int = 1000) -> dict[str, int]:
    """A word index like Keras's Tokenizer's, one entry more than ``vocab`` (cut by the bundle)."""
    return {f"word{i}": i for i in range(1, vocab + 1)}


def toy_images(n: int, seed: int = 1) -> np.ndarray:
    """Blurry random blobs in [0, 1], float32 NHWC (n, 28, 28, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28)).astype(np.float32)
    x = (x + np.roll(x, 1, 1) + np.roll(x, 1, 2) + np.roll(x, (1, 1), (1, 2))) / 4
    x = np.clip((x - 0.4) * 3, 0, 1)
    return x[..., None].astype(np.float32)


def toy_tokens(n: int, maxlen: int = 20, vocab: int = 1000, seed: int = 2) -> np.ndarray:
    """Token ids (n, maxlen) int64, left-padded with zeros like Keras's pad_sequences."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, maxlen), dtype=np.int64)
    for row, length in zip(x, rng.integers(3, maxlen + 1, size=n)):
        row[: maxlen - length] = 0
    return x
