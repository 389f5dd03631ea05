"""Keras 3's training details: batches from iterables and generators, sample and class weights,
metric names and History keys, and the loss reduction over time.

The KERAS_* numbers below were computed once with Keras 3.15.1 (torch 2.13 backend, CPU) by the
same models with the same weights, by tools/keras_training_reference.py; Keras is not a test
dependency.
"""

from __future__ import annotations

import numpy as np
import pytest
from keras_reference_data import X3, Y3, W, X, Y, classifier, sequence_model

import edgemine as keras
from edgemine.data_adapters import is_batch_source
from edgemine.layers import Dense
from edgemine.metrics import MeanSquaredError, SparseCategoricalAccuracy

KERAS_SEQUENCE_LOSS = 1.5585980415344238  # cross-entropy on (4, 3, 4): mean over time
KERAS_SEQUENCE_ACCURACY = 0.4166666865348816
KERAS_KERNEL_AFTER_SGD_ROW0 = [-0.22196431, -0.58216304, 0.86427814, -0.24154085]
KERAS_WEIGHTED = {  # evaluate(X, Y, sample_weight=W), any batch_size; test_on_batch too
    "accuracy": 0.1666666716337204,  # plain metrics ignore the weights
    "loss": 4.91482400894165,
    "sparse_categorical_accuracy": 0.13333334028720856,  # weighted_metrics use them
    "weighted_accuracy": 0.13333334028720856,
}
KERAS_UNWEIGHTED_LOSS = 2.8952548503875732
KERAS_CLASS_WEIGHT_FIT = {  # fit(class_weight={0: 2, 2: 0.5}, batch_size=6, shuffle=False)
    "accuracy": 0.1666666716337204,
    "loss": 3.7514851093292236,
    "sparse_categorical_accuracy": 0.2857142984867096,
    "weighted_accuracy": 0.2857142984867096,
}
KERAS_SAMPLE_WEIGHT_FIT = {  # fit(sample_weight=W, batch_size=4, validation_data=(X, Y, W))
    "loss": 4.900393962860107,
    "val_loss": 3.943467378616333,
    "val_weighted_accuracy": 0.13333334028720856,
}


def _sequence_model(loss):
    return sequence_model(keras, loss)


def _classifier():
    return classifier(keras)


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_sequence_cross_entropy_is_averaged_over_time_as_in_keras(loss):
    model = _sequence_model(loss)
    y = np.eye(4, dtype="float32")[Y3] if loss == "categorical_crossentropy" else Y3
    logs = model.evaluate(X3, y, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(KERAS_SEQUENCE_LOSS, rel=1e-6)
    assert logs["accuracy"] == pytest.approx(KERAS_SEQUENCE_ACCURACY, rel=1e-6)
    model.train_on_batch(X3, y)  # the gradient is averaged over time too
    np.testing.assert_allclose(model.get_weights()[0][0], KERAS_KERNEL_AFTER_SGD_ROW0, atol=1e-6)


def test_sparse_labels_per_step_take_keras_shapes():
    model = _sequence_model("sparse_categorical_crossentropy")
    base = model.evaluate(X3, Y3, verbose=0)
    assert model.evaluate(X3, Y3[..., None], verbose=0) == pytest.approx(base)
    with pytest.raises(ValueError, match=r"integer labels of shape \(n, 3\)"):
        model.evaluate(X3, Y3[:, :2], verbose=0)
    flat = keras.Sequential([keras.Input((3,)), Dense(3, activation="softmax")])
    flat.compile("sgd", "sparse_categorical_crossentropy")
    assert flat.evaluate(X, Y, verbose=0) == pytest.approx(flat.evaluate(X, Y[:, None], verbose=0))


def test_sample_weight_reduces_as_keras_does():
    model = _classifier()
    for batch_size in (None, 4):
        logs = model.evaluate(
            X, Y, sample_weight=W, batch_size=batch_size, verbose=0, return_dict=True
        )
        assert logs == pytest.approx(KERAS_WEIGHTED, rel=1e-6)
    assert model.test_on_batch(X, Y, sample_weight=W, return_dict=True) == pytest.approx(
        KERAS_WEIGHTED, rel=1e-6
    )
    assert model.evaluate(X, Y, verbose=0)[0] == pytest.approx(KERAS_UNWEIGHTED_LOSS, rel=1e-6)
    values = model.evaluate(X, Y, sample_weight=W, verbose=0)  # [loss, *metrics], compile order
    assert values == pytest.approx([4.91482400894165, 1 / 6, 0.13333334, 0.13333334], rel=1e-6)


def test_class_weight_and_sample_weight_in_fit_match_keras():
    model = _classifier()
    hist = model.fit(X, Y, class_weight={0: 2.0, 2: 0.5}, batch_size=6, shuffle=False, verbose=0)
    assert {k: v[0] for k, v in hist.history.items()} == pytest.approx(
        KERAS_CLASS_WEIGHT_FIT, rel=1e-6
    )
    model = _classifier()
    hist = model.fit(
        X, Y, sample_weight=W, batch_size=4, shuffle=False, verbose=0, validation_data=(X, Y, W)
    )
    assert list(hist.history) == sorted(hist.history)  # Keras 3 orders the keys
    for key, want in KERAS_SAMPLE_WEIGHT_FIT.items():
        assert hist.history[key][0] == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="not both"):
        model.fit(X, Y, sample_weight=W, class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match="class_weight keys"):
        model.fit(X, Y, class_weight={"a": 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(6,\)"):
        model.train_on_batch(X, Y, sample_weight=W[:3])


@pytest.mark.parametrize(
    ("request_", "loss", "key"),
    [
        ("accuracy", "sparse_categorical_crossentropy", "accuracy"),
        ("acc", "sparse_categorical_crossentropy", "acc"),
        ("Accuracy", "sparse_categorical_crossentropy", "Accuracy"),
        ("sparse_categorical_accuracy", "sparse_categorical_crossentropy", None),
        ("categorical_accuracy", "categorical_crossentropy", None),
        ("binary_accuracy", "binary_crossentropy", None),
        ("mae", "mse", None),
        ("mse", "mse", None),
        ("mean_squared_error", "mse", None),
        ("MSE", "mse", None),
        ("MeanAbsoluteError", "mse", None),
        (
            SparseCategoricalAccuracy(),
            "sparse_categorical_crossentropy",
            "sparse_categorical_accuracy",
        ),
        (MeanSquaredError(), "mse", "mean_squared_error"),
        (keras.metrics.BinaryAccuracy(name="bacc"), "binary_crossentropy", "bacc"),
    ],
)
def test_history_keys_are_keras_3s(request_, loss, key):
    """Keras 3.15.1 gave these History keys for each request (the name as asked, or the
    object's name), plus 'loss' and each with 'val_'."""
    units = 1 if loss in ("mse", "binary_crossentropy") else 3
    y = {"categorical_crossentropy": np.eye(3)[Y], "sparse_categorical_crossentropy": Y}.get(
        loss, (Y > 0).astype("float32")
    )
    model = keras.Sequential(
        [keras.Input((3,)), Dense(units, activation="softmax" if units > 1 else "sigmoid")]
    )
    model.compile("sgd", loss, metrics=[request_])
    hist = model.fit(X, y, epochs=1, verbose=0, validation_split=0.5)
    key = key or request_
    assert list(hist.history) == sorted(["loss", key, "val_loss", f"val_{key}"])


def _batches(n_batches=3, size=2, weights=False):
    rng = np.random.default_rng(1)
    for _ in range(n_batches):
        x = rng.normal(size=(size, 3)).astype("float32")
        y = rng.integers(0, 3, size)
        yield (x, y, np.ones(size, "float32")) if weights else (x, y)


def test_fit_evaluate_predict_take_iterables_and_generators():
    data = list(_batches())
    x_all = np.concatenate([b[0] for b in data])
    y_all = np.concatenate([b[1] for b in data])
    a, b = _classifier(), _classifier()
    ha = a.fit(data, epochs=2, shuffle=False, verbose=0, validation_data=data)
    hb = b.fit(
        x_all,
        y_all,
        batch_size=2,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(x_all, y_all),
    )
    for key in hb.history:
        np.testing.assert_allclose(ha.history[key], hb.history[key], rtol=1e-6)
    assert a.evaluate(iter(data), verbose=0) == pytest.approx(b.evaluate(x_all, y_all, verbose=0))
    np.testing.assert_allclose(a.predict(iter(data)), b.predict(x_all), rtol=1e-6)
    np.testing.assert_allclose(
        a.predict(iter([d[0] for d in data])), b.predict(x_all), rtol=1e-6
    )  # x only
    c = _classifier()
    c.fit(_batches(weights=True), epochs=1, verbose=0)  # (x, y, sample_weight) batches
    np.testing.assert_allclose(c.get_weights()[0], _trained_on(x_all, y_all), rtol=1e-5)


def _trained_on(x, y):
    model = _classifier()
    model.fit(x, y, batch_size=2, shuffle=False, verbose=0)
    return model.get_weights()[0]


def test_steps_per_epoch_reads_a_generator_on_across_epochs():
    model = _classifier()
    hist = model.fit(_batches(n_batches=4), steps_per_epoch=2, epochs=2, verbose=0)
    assert len(hist.history["loss"]) == 2
    with pytest.warns(UserWarning, match="ran out of data"):
        hist = model.fit(_batches(n_batches=3), steps_per_epoch=2, epochs=3, verbose=0)
    gen = _batches(n_batches=2)
    with pytest.warns(UserWarning, match="ran out of data"):
        hist = model.fit(gen, epochs=3, verbose=0)  # one pass: epochs 2 and 3 find nothing
    assert len(hist.history["loss"]) == 1
    hist = model.fit(
        list(_batches()),
        epochs=1,
        verbose=0,
        validation_data=_batches(n_batches=10),
        validation_steps=2,
    )
    assert "val_loss" in hist.history


def test_iterables_are_refused_clearly_where_keras_refuses_them():
    model = _classifier()
    with pytest.raises(ValueError, match="leave y and sample_weight out"):
        model.fit(_batches(), Y, verbose=0)
    model.fit(_batches(), batch_size=4, verbose=0)  # ignored, as Keras ignores it
    with pytest.raises(ValueError, match="validation_split needs arrays"):
        model.fit(_batches(), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"x of x \(batch 1\)"):
        model.fit(iter([(np.zeros((2, 4)), np.zeros(2))]), verbose=0)
    with pytest.raises(ValueError, match="tuple of 4 items"):
        model.fit(iter([(X, Y, W, W)]), verbose=0)
    assert not is_batch_source(np.zeros(3)) and is_batch_source(iter([]))


def test_framework_data_objects_are_refused_by_name():
    fake = type("Dataset", (), {"__iter__": lambda self: iter([]), "__module__": "tensorflow.data"})
    with pytest.raises(TypeError, match=r"x is a tensorflow\.data\.Dataset: edgemine does not run"):
        _classifier().fit(fake(), verbose=0)
    loader = type(
        "DataLoader", (), {"__iter__": lambda self: iter([]), "__module__": "torch.utils.data"}
    )
    with pytest.raises(TypeError, match="DataLoader"):
        _classifier().predict(loader())


def test_an_unbuilt_sequential_builds_from_the_first_batch():
    for data in (lambda: _batches(), lambda: (np.concatenate([b[0] for b in _batches()]), None)):
        model = keras.Sequential([Dense(4, activation="relu"), Dense(3, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc"])
        source = data()
        if isinstance(source, tuple):  # arrays
            hist = model.fit(source[0], np.zeros(len(source[0]), "int64"), verbose=0)
        else:
            hist = model.fit(source, verbose=0)
        assert sorted(hist.history) == ["acc", "loss"] and model.built
