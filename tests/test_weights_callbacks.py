"""save_weights / load_weights in Keras 3's .weights.h5 layout, and the ModelCheckpoint and
EarlyStopping behaviour of Keras 3 (keras/src/callbacks, read for 3.15.1)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import edgemine as keras
from edgemine.callbacks import Callback, EarlyStopping, ModelCheckpoint
from edgemine.keras import KerasFileError, load_keras
from edgemine.layers import LSTM, Bidirectional, Conv2D, Dense, Flatten, MaxPooling2D

FIXTURES = Path(__file__).parent / "fixtures" / "keras"


def _cnn_layers():
    return [
        Conv2D(4, 3, activation="relu"),
        MaxPooling2D(),
        Conv2D(8, 3, activation="relu"),
        MaxPooling2D(),
        Conv2D(8, 3, activation="relu"),
        Flatten(),
        Dense(16, activation="relu"),
        Dense(10, activation="softmax"),
    ]


def _functional_cnn(shape):
    inputs = keras.Input(shape=shape)
    h = inputs
    for layer in _cnn_layers():
        h = layer(h)
    return keras.models.Model(inputs, h)


def test_a_keras_weights_file_loads_into_sequential_and_functional_models():
    ref = np.load(FIXTURES / "seed_cnn.npz")
    shape = ref["x"].shape[1:]
    for model in (keras.Sequential([keras.Input(shape), *_cnn_layers()]), _functional_cnn(shape)):
        model.load_weights(FIXTURES / "seed_cnn.weights.h5")
        np.testing.assert_allclose(model.predict(ref["x"]), ref["y5"], atol=1e-5)


def test_save_weights_round_trips_in_keras_3s_layout(tmp_path):
    ref = np.load(FIXTURES / "seed_cnn.npz")
    model = _functional_cnn(ref["x"].shape[1:])
    model.load_weights(FIXTURES / "seed_cnn.weights.h5")
    path = tmp_path / "out.weights.h5"
    model.save_weights(path)
    with h5py.File(path) as mine, h5py.File(FIXTURES / "seed_cnn.weights.h5") as keras_file:

        def datasets(f):
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            return sorted(names)

        assert datasets(mine) == datasets(keras_file)  # the same keys Keras writes
    other = keras.Sequential([keras.Input(ref["x"].shape[1:]), *_cnn_layers()])
    other.load_weights(path)
    np.testing.assert_allclose(other.predict(ref["x"]), ref["y5"], atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["out.weights.h5"]  # no temporary left
    with pytest.raises(ValueError, match=r"must end in '\.weights\.h5'"):
        model.save_weights(tmp_path / "w.h5")


def test_recurrent_weights_round_trip(tmp_path):
    def make():
        keras.utils.set_random_seed(len(make.__name__) + make.calls)
        make.calls += 1
        return keras.Sequential([keras.Input((5, 3)), Bidirectional(LSTM(4)), Dense(2)])

    make.calls = 0
    a, b = make(), make()
    a.save_weights(tmp_path / "r.weights.h5")
    with h5py.File(tmp_path / "r.weights.h5") as f:
        assert "layers/bidirectional/forward_layer/cell/vars/2" in f
    b.load_weights(tmp_path / "r.weights.h5")
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_load_weights_names_the_layer_on_a_shape_mismatch(tmp_path):
    model = keras.Sequential([keras.Input((3,)), Dense(4), Dense(2, name="head")])
    model.save_weights(tmp_path / "w.weights.h5")
    wider = keras.Sequential([keras.Input((3,)), Dense(4), Dense(5, name="head")])
    with pytest.raises(
        KerasFileError,
        match=r"layer 'head' \(Dense\), weight 0 .* has shape \(4, 2\), expected \(4, 5\)",
    ):
        wider.load_weights(tmp_path / "w.weights.h5")


def _toy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    return x, (x.sum(1) > 0).astype("int64")


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), Dense(4, activation="relu"), Dense(2, activation="softmax")]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Script(Callback):
    """Feeds made-up val_loss values, so the monitored callbacks see a known sequence."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


def test_model_checkpoint_formats_paths_and_saves_the_best_weights(tmp_path):
    x, y = _toy()
    model = _model()
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.weights.h5")
    ckpt = ModelCheckpoint(pattern, save_best_only=True, save_weights_only=True)
    model.fit(x, y, epochs=4, verbose=0, callbacks=[Script([0.5, 0.7, 0.4, 0.45]), ckpt])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-01-0.50.weights.h5",
        "ckpt-03-0.40.weights.h5",
    ]
    with pytest.raises(ValueError, match=r"must end in \.weights\.h5"):
        ModelCheckpoint(tmp_path / "c.edgemine", save_weights_only=True)
    bad = ModelCheckpoint(str(tmp_path / "{nope}.edgemine"))
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[bad])
    ckpt = ModelCheckpoint(
        tmp_path / "best.edgemine", save_best_only=True, initial_value_threshold=0.3
    )
    model.fit(x, y, epochs=2, verbose=0, callbacks=[Script([0.5, 0.4]), ckpt])
    assert not (tmp_path / "best.edgemine").exists()  # nothing beat the threshold


def test_early_stopping_restores_the_best_weights_at_the_end(tmp_path):
    x, y = _toy()
    model = _model()
    seen = []

    class Snap(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(model.get_weights())

    stop = EarlyStopping(patience=2, restore_best_weights=True)
    hist = model.fit(
        x,
        y,
        epochs=10,
        verbose=0,
        callbacks=[Script([0.5, 0.3, 0.4, 0.35, 0.2] + [1] * 5), Snap(), stop],
    )
    assert len(hist.history["loss"]) == 4 and stop.stopped_epoch == 3 and stop.best_epoch == 1
    for got, want in zip(model.get_weights(), seen[1]):
        np.testing.assert_array_equal(got, want)
    # no early stop: the best epoch's weights still come back at the end (Keras 3)
    model = _model()
    seen.clear()
    stop = EarlyStopping(patience=5, restore_best_weights=True)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[Script([0.5, 0.3, 0.4]), Snap(), stop])
    np.testing.assert_array_equal(model.get_weights()[0], seen[1][0])


def test_early_stopping_start_from_epoch_and_baseline():
    x, y = _toy()
    stop = EarlyStopping(patience=1, start_from_epoch=2)
    hist = _model().fit(
        x, y, epochs=6, verbose=0, callbacks=[Script([0.1, 0.9, 0.5, 0.6, 0.7, 0.8]), stop]
    )
    assert len(hist.history["loss"]) == 4  # epochs 0-1 not watched; 3 fails to improve on 2
    values = [0.5, 0.4, 0.45, 0.45, 0.45, 0.45]
    for baseline, epochs in ((None, 4), (0.2, 3)):  # not beating the baseline keeps the wait
        stop = EarlyStopping(patience=2, baseline=baseline)
        hist = _model().fit(x, y, epochs=6, verbose=0, callbacks=[Script(values), stop])
        assert len(hist.history["loss"]) == epochs


def test_functional_weights_with_two_layers_of_a_class_load_only_in_a_known_order(tmp_path):
    """Keras numbers a class's layers in its own layer order, which a functional model may not
    share: same-shaped weights could land in the wrong layer. A file edgemine wrote for this
    layer order loads; the same file without the record of that order is refused."""
    import h5py

    from edgemine.keras.files import KerasFileError
    from edgemine.layers import Add, Dense, Input
    from edgemine.models import Model

    def build():
        x = Input(shape=(3,))
        first, second = Dense(3, name="first"), Dense(3, name="second")
        return Model(x, Add()([second(x), first(x)]))

    model, other = build(), build()
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    third = build()
    load_keras(path, model=third)  # the same reader behind both
    for a, b in zip(model.get_weights(), third.get_weights()):
        np.testing.assert_array_equal(a, b)
    with h5py.File(path, "a") as f:
        del f.attrs["edgemine_layer_order"]  # as Keras writes it
    with pytest.raises(KerasFileError, match="several Dense layers"):
        other.load_weights(path)
    with pytest.raises(KerasFileError, match="several Dense layers"):
        load_keras(path, model=other)
