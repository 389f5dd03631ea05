"""A/B check that a refactor leaves CPU training bit for bit the same.

Trains the seed CNN and seed LSTM (the zoo's specs) and two models that use the other layers and
fusions (batch norm, dropout, average pooling, a masked bidirectional GRU) for a few steps on
fixed synthetic data with a fixed seed, and writes every weight to an .npz file. Run it once
with each code base and compare::

    PYTHONPATH=/path/to/main python tools/ab_train_weights.py write /tmp/a.npz
    python tools/ab_train_weights.py write /tmp/b.npz
    python tools/ab_train_weights.py compare /tmp/a.npz /tmp/b.npz
"""

from __future__ import annotations

import sys

import numpy as np


def _models():
    from edgemine import layers as L
    from edgemine.models import Sequential
    from edgemine.zoo import build_model, load_spec

    yield "seed_cnn", build_model(load_spec("seed_cnn")), "images", 32
    yield "seed_lstm", build_model(load_spec("seed_lstm")), "tokens", 32
    cnn = Sequential(
        [
            L.Conv2D(8, 3, padding="same", input_shape=(12, 12, 2)),
            L.BatchNormalization(),
            L.Activation("relu"),
            L.AveragePooling2D(),
            L.Conv2D(8, 3, activation="tanh"),
            L.MaxPooling2D(),
            L.Dropout(0.3),
            L.GlobalMaxPooling2D(),
            L.Dense(10, activation="softmax"),
        ]
    )
    cnn.compile("rmsprop", "categorical_crossentropy")
    yield "misc_cnn", cnn, "small_images", 32
    rnn = Sequential(
        [
            L.Embedding(50, 8, mask_zero=True, input_length=12),
            L.Bidirectional(L.GRU(6, return_sequences=True, dropout=0.2)),
            L.SimpleRNN(5),
            L.Dense(10, activation="sigmoid"),
        ]
    )
    rnn.compile("sgd", "binary_crossentropy")
    yield "misc_rnn", rnn, "small_tokens", 32
    for batch in (8, 32):  # the general cells: one jitted call per sequence, or a product per step
        general = Sequential(
            [
                L.Embedding(50, 6, input_length=12),
                L.LSTM(5, activation="relu", return_sequences=True, go_backwards=True),
                L.GRU(4, recurrent_activation="tanh"),
                L.Dense(10, activation="softmax"),
            ]
        )
        general.compile("adam", "categorical_crossentropy")
        yield f"general_rnn_batch{batch}", general, "small_tokens", batch


def _data(kind: str, rng: np.random.Generator):
    if kind == "images":
        x = rng.random((96, 28, 28, 1), dtype=np.float32)
    elif kind == "small_images":
        x = rng.standard_normal((96, 12, 12, 2)).astype(np.float32)
    elif kind == "tokens":
        x = rng.integers(0, 10000, (96, 100)).astype(np.int32)
        x[:, :30] = 0  # padding
    else:
        x = rng.integers(1, 50, (96, 12)).astype(np.int32)
        x[::3, :5] = 0
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 96)]
    return x, y


def write(path: str) -> None:
    import edgemine
    from edgemine.utils import set_random_seed

    print(f"edgemine from {edgemine.__file__}")
    weights = {}
    set_random_seed(1234)
    for name, model, kind, batch in _models():
        x, y = _data(kind, np.random.default_rng(7))
        model.fit(x, y, batch_size=batch, epochs=2, verbose=0)
        for i, w in enumerate(model.get_weights()):
            weights[f"{name}/{i}"] = w
    np.savez(path, **weights)
    print(f"{len(weights)} arrays -> {path}")


def compare(a: str, b: str) -> int:
    wa, wb = np.load(a), np.load(b)
    if sorted(wa.files) != sorted(wb.files):
        print("different sets of weights")
        return 1
    differ = [k for k in wa.files if not np.array_equal(wa[k], wb[k])]
    models = sorted({k.split("/")[0] for k in wa.files})
    for m in models:
        keys = [k for k in wa.files if k.startswith(m + "/")]
        bad = [k for k in keys if k in differ]
        worst = max((float(np.max(np.abs(wa[k] - wb[k]))) for k in bad), default=0.0)
        print(f"{m}: {len(keys)} arrays, {len(bad)} differ (max abs difference {worst:g})")
    return 1 if differ else 0


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
