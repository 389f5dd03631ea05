"""Sequential: training on real data, weights, saving, resuming, callbacks, determinism."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgemine import callbacks as cb
from edgemine import zoo
from edgemine.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from edgemine.models import Sequential, load_model
from edgemine.saving import ModelFileError
from edgemine.utils import set_random_seed, to_categorical


def small_cnn(seed=0, bn=False):
    set_random_seed(seed)
    layers = [Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)), MaxPooling2D()]
    if bn:
        layers.append(BatchNormalization())
    layers += [Flatten(), Dropout(0.2), Dense(3, activation="softmax")]
    model = Sequential(layers)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def toy_data(n=64, seed=0):
    r = np.random.default_rng(seed)
    x = r.random((n, 8, 8, 1), dtype=np.float32)
    labels = (x[:, :4].mean(axis=(1, 2, 3)) * 6).astype(int) % 3
    return x, to_categorical(labels, 3)


@pytest.fixture(scope="module")
def mnist():
    return zoo.load_data("mnist")


def test_seed_cnn_learns_real_mnist_in_one_epoch(mnist):
    set_random_seed(1)
    model = zoo.build_model(zoo.load_spec("seed_cnn"))
    model.fit(mnist.x_train, to_categorical(mnist.y_train, 10), epochs=1, verbose=0)
    loss, acc = model.evaluate(mnist.x_test, to_categorical(mnist.y_test, 10), verbose=0)
    assert acc > 0.85, acc


def test_same_seed_same_weights_and_training():
    a, b = small_cnn(5), small_cnn(5)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    x, y = toy_data()
    set_random_seed(9)
    ha = a.fit(x, y, epochs=2, verbose=0).history
    set_random_seed(9)
    hb = b.fit(x, y, epochs=2, verbose=0).history
    assert ha == hb
    assert not np.array_equal(small_cnn(6).get_weights()[0], a.get_weights()[0])


def test_keras_initialisers_and_layouts():
    model = small_cnn()
    k, b = model.layers[0].get_weights()
    assert k.shape == (3, 3, 1, 4) and b.shape == (4,) and not b.any()
    limit = np.sqrt(6 / (9 * 1 + 9 * 4))  # glorot_uniform with the receptive field
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.5 * limit


def test_get_set_weights_round_trip():
    a, b = small_cnn(1), small_cnn(2)
    b.set_weights(a.get_weights())
    x, _ = toy_data(8)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    with pytest.raises(ValueError, match="expects"):
        b.set_weights(a.get_weights()[:-1])
    bad = a.get_weights()
    bad[0] = bad[0][..., :2]
    with pytest.raises(ValueError, match="shape"):
        b.set_weights(bad)


def test_save_load_predict_identical(tmp_path):
    model = small_cnn(bn=True)
    x, y = toy_data()
    model.fit(x, y, epochs=1, verbose=0)
    model.preprocessing = {"kind": "image", "height": 8, "width": 8, "channels": 1, "scale": 1.0}
    path = tmp_path / "m.edgemine"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.preprocessing == model.preprocessing
    assert loaded.optimizer.iterations == model.optimizer.iterations
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["config.json", "optimizer.npz", "weights.npz"]


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    model = small_cnn()
    path = tmp_path / "m.edgemine"
    model.save(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        small_cnn(3).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.edgemine"]  # no temp file left behind


def test_checkpoint_resume_equals_uninterrupted_training(tmp_path):
    """Shuffle and dropout on: the checkpoint carries the model's generator, so the resumed
    epoch draws what the uninterrupted one drew, and every weight and slot is bit for bit."""
    x, y = toy_data()
    straight = small_cnn(4, bn=True)
    straight_history = straight.fit(x, y, epochs=3, batch_size=16, verbose=0).history

    part = small_cnn(4, bn=True)
    ckpt = tmp_path / "ckpt.edgemine"
    callbacks = [cb.ModelCheckpoint(ckpt, monitor="loss")]
    part.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
    set_random_seed(99)  # the resumed run must not depend on the global generator
    resumed = load_model(ckpt)
    assert resumed.epochs_trained == 2
    history = resumed.fit(x, y, epochs=3, batch_size=16, initial_epoch=2, verbose=0).history
    assert history["loss"] == straight_history["loss"][2:]
    assert resumed.optimizer.iterations == straight.optimizer.iterations
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for key, value in straight.optimizer.get_state().items():
        np.testing.assert_array_equal(resumed.optimizer.get_state()[key], value)


def test_resume_is_exact_without_randomness(tmp_path):
    def make():
        set_random_seed(11)
        m = Sequential(
            [
                Flatten(input_shape=(8, 8, 1)),
                Dense(5, activation="tanh"),
                Dense(3, activation="softmax"),
            ]
        )
        m.compile(optimizer="adam", loss="categorical_crossentropy")
        return m

    x, y = toy_data()
    straight = make()
    straight.fit(x, y, epochs=3, shuffle=False, verbose=0)
    part = make()
    part.fit(x, y, epochs=1, shuffle=False, verbose=0)
    part.save(tmp_path / "c.edgemine")
    resumed = load_model(tmp_path / "c.edgemine")
    resumed.fit(x, y, epochs=3, initial_epoch=1, shuffle=False, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_callbacks(tmp_path):
    x, y = toy_data()
    model = small_cnn()
    log = tmp_path / "log.csv"
    seen_lr = []
    sched = cb.LearningRateScheduler(lambda e, lr: 0.01 / (e + 1))

    class Spy(cb.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen_lr.append(self.model.optimizer.learning_rate)

    hist = model.fit(
        x,
        y,
        epochs=3,
        validation_split=0.25,
        verbose=0,
        callbacks=[sched, Spy(), cb.CSVLogger(log)],
    )
    assert seen_lr == pytest.approx([0.01, 0.005, 0.01 / 3])
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    rows = log.read_text().strip().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 4

    stop = cb.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    hist = small_cnn().fit(x, y, epochs=10, verbose=0, callbacks=[stop])
    assert len(hist.epoch) == 2  # the first epoch improves on inf; the second cannot by 10

    plateau = cb.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5, min_delta=10.0)
    m = small_cnn()
    m.fit(x, y, epochs=3, verbose=0, callbacks=[plateau])
    assert m.optimizer.learning_rate < 0.001


def test_terminate_on_nan():
    x, y = toy_data()
    model = small_cnn()
    model.rng = np.random.default_rng(0)  # whether this run overflows to NaN depends on the draws
    model.optimizer.learning_rate = 1e30
    hist = model.fit(x, y, epochs=5, verbose=0, callbacks=[cb.TerminateOnNaN()])
    assert len(hist.epoch) <= 2


def test_a_nan_weight_is_not_hidden_by_relu_or_max_pooling():
    """A NaN kernel entry must reach the loss (as in Keras), so that TerminateOnNaN stops: a
    ReLU that maps NaN to 0 (``v if v > 0 else 0``) or a max pooling that skips NaN would let
    training go on with a broken layer."""
    x, y = toy_data()
    model = small_cnn()
    weights = model.get_weights()
    weights[0][0, 0, 0, 0] = np.nan
    model.set_weights(weights)
    assert np.isnan(model.predict(x[:4])).all()
    hist = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[cb.TerminateOnNaN()])
    assert len(hist.epoch) == 1 and np.isnan(hist.history["loss"][0])


# tiled 2x2 (registers), tiled 3x3 (the tiled kernel's general loop), and the general kernel
@pytest.mark.parametrize("pool", [(2, 2), (3, 3), (3, 2)])
def test_relu_and_max_pooling_propagate_nan(pool):
    from edgemine.layers import Activation, GlobalMaxPooling2D

    relu = Activation("relu")
    np.testing.assert_array_equal(
        relu(np.array([[np.nan, -1.0, 2.0]], np.float32)), [[np.nan, 0.0, 2.0]]
    )
    x = np.zeros((1, 6, 6, 2), np.float32)
    x[0, 1, 1, 0] = np.nan
    x[0, 2, 3, 0] = 5.0
    layer = MaxPooling2D(pool, strides=(2, 2) if pool == (3, 2) else None)
    y = layer(x)
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y).sum() == 1 and not np.isnan(y[..., 1]).any()
    assert np.isnan(GlobalMaxPooling2D()(x)[0, 0])


def test_train_and_test_on_batch_and_metrics():
    x, y = toy_data(16)
    model = small_cnn()
    loss, acc = model.train_on_batch(x, y)
    assert np.isfinite(loss) and 0 <= acc <= 1
    logs = model.test_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}
    sparse = Sequential([Flatten(input_shape=(8, 8, 1)), Dense(3, activation="softmax")])
    sparse.compile("sgd", "sparse_categorical_crossentropy", metrics=["acc"])
    # Keras 3 keys a metric by the name asked for (Keras 2 renamed 'acc' to 'accuracy')
    assert set(sparse.evaluate(x, y.argmax(1), verbose=0, return_dict=True)) == {"loss", "acc"}


def test_progress_bar_is_log_friendly(capsys):
    x, y = toy_data()
    small_cnn().fit(x, y, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert out.count("2/2 [==============================]") == 2  # one finished line per epoch


def test_summary_counts_params():
    lines = []
    model = small_cnn()
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert f"Total params: {model.count_params():,}" in text
    assert "conv2d" in text and "(None, 6, 6, 4)" in text


def test_hostile_model_files(tmp_path):
    model = small_cnn()
    good = tmp_path / "good.edgemine"
    model.save(good)
    data = good.read_bytes()

    def write(name, blob):
        p = tmp_path / name
        p.write_bytes(blob)
        return p

    cases = {
        "truncated": (data[: len(data) // 2], "not an edgemine model file|corrupt"),
        "empty": (b"", "not an edgemine model file"),
        "text": (b"hello", "not an edgemine model file"),
    }
    for name, (blob, msg) in cases.items():
        with pytest.raises(ModelFileError, match=msg):
            load_model(write(name, blob))

    def rezip(mutate):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        mutate(members)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for n, b in members.items():
                zf.writestr(n, b)
        return buf.getvalue()

    import json

    def version(m):
        c = json.loads(m["config.json"])
        c["format_version"] = 99
        m["config.json"] = json.dumps(c)

    def tamper_weights(m):
        w = bytearray(m["weights.npz"])
        w[-100] ^= 0xFF
        m["weights.npz"] = bytes(w)

    def evil_layer(m):
        c = json.loads(m["config.json"])
        c["model"]["config"]["layers"][0]["class_name"] = "os.system"
        m["config.json"] = json.dumps(c)

    def bad_arg(m):
        c = json.loads(m["config.json"])
        c["model"]["config"]["layers"][0]["config"]["__class__"] = "x"
        m["config.json"] = json.dumps(c)

    def extra(m):
        m["payload.pkl"] = b"cos\nsystem\n"

    for mutate, msg in [
        (version, "version 99"),
        (tamper_weights, "sha256"),
        (evil_layer, "unknown layer type"),
        (bad_arg, "invalid config"),
        (extra, "unexpected entries"),
    ]:
        with pytest.raises(ModelFileError, match=msg):
            load_model(write(mutate.__name__, rezip(mutate)))


def test_mask_passes_through_dropout_dense_and_batchnorm_as_in_keras():
    from edgemine.layers import LSTM, Embedding

    x = np.array([[0, 0, 3, 4, 5], [0, 7, 2, 0, 1]])
    set_random_seed(2)
    plain = Sequential([Embedding(10, 4, mask_zero=True), LSTM(3)])
    plain.build((None, 5))
    for middle in (Dropout(0.5), Dense(4), BatchNormalization()):
        set_random_seed(2)
        model = Sequential([Embedding(10, 4, mask_zero=True), middle, LSTM(3)])
        model.build((None, 5))
        model.layers[0].set_weights(plain.layers[0].get_weights())
        model.layers[2].set_weights(plain.layers[1].get_weights())
        if isinstance(middle, Dense):  # identity, so that only the mask decides the result
            middle.set_weights([np.eye(4, dtype=np.float32), np.zeros(4, np.float32)])
        if isinstance(middle, BatchNormalization):
            middle.set_weights([np.ones(4), np.zeros(4), np.zeros(4), np.full(4, 1 - 1e-3)])
        np.testing.assert_allclose(model.predict(x), plain.predict(x), rtol=1e-5, atol=1e-6)


def test_trained_zoo_model_still_loads_and_matches_its_onnx(mnist):
    """models/trained/ holds files made by the project's own commands (tools/make_zoo_models.sh)."""
    from edgemine.runtime import Session

    trained = Path(__file__).resolve().parents[1] / "models" / "trained"
    model = load_model(trained / "seed_cnn.edgemine")
    probs = model.predict(mnist.x_test, batch_size=256)
    assert (probs.argmax(-1) == mnist.y_test).mean() > 0.96
    onnx_probs = Session(trained / "seed_cnn.onnx").predict(mnist.x_test[:64])
    np.testing.assert_allclose(onnx_probs, probs[:64], atol=1e-5)
    int8 = Session(trained / "seed_cnn_int8.onnx").predict(mnist.x_test)
    assert (int8.argmax(-1) == mnist.y_test).mean() > 0.955


@pytest.mark.parametrize(
    "pool,strides,padding",
    [((2, 2), None, "valid"), ((2, 3), (1, 2), "same"), ((3, 3), None, "same")],
)
def test_relu_backward_applied_by_max_pooling_changes_nothing(monkeypatch, pool, strides, padding):
    """A MaxPooling2D fed by a ReLU applies the ReLU's backward to its small output gradient and
    the layer below runs its linear backward only: the weights after a step are bit for bit
    those of the unfused backward (ties and all-zero windows included)."""
    from edgemine.models.graph import Graph

    def step(fuse: bool):
        if not fuse:
            monkeypatch.setattr(Graph, "absorbing", lambda graph: {})
        set_random_seed(3)
        m = Sequential(
            [
                Conv2D(4, (3, 3), padding="same", activation="relu", input_shape=(7, 8, 2)),
                MaxPooling2D(pool, strides=strides, padding=padding),
                Dense(3, activation="relu"),  # Dense over the last axis, then a second pair
                MaxPooling2D((2, 2), padding="same"),
                Flatten(),
                Dense(5, activation="softmax"),
            ]
        )
        m.compile("sgd", "categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((6, 7, 8, 2)).astype(np.float32)
        y = to_categorical(rng.integers(0, 5, 6), 5)
        m.train_on_batch(x, y)
        monkeypatch.undo()
        return m.get_weights()

    def absorbed(activation):
        m = Sequential([Conv2D(1, 1, activation=activation, input_shape=(4, 4, 1)), MaxPooling2D()])
        return [node.layer.name for node in m._graph.absorbing().values()]

    assert absorbed("relu") and not absorbed(None)
    for a, b in zip(step(True), step(False)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "loss,act,units",
    [
        ("categorical_crossentropy", "softmax", 4),
        ("sparse_categorical_crossentropy", "softmax", 4),
        ("binary_crossentropy", "sigmoid", 1),
    ],
)
def test_loss_applying_the_last_activation_changes_nothing(loss, act, units):
    """In training, a last Dense leaves its softmax / sigmoid to the loss (one GPU launch for
    activation, losses and gradient). Against a separate Activation layer, which keeps the
    activation in the forward pass, the losses, outputs and weights are bit for bit the same."""
    from edgemine.layers import Activation

    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 5)).astype(np.float32)
    labels = rng.integers(0, max(units, 2), (12, 1))
    y = to_categorical(labels[:, 0], units) if loss == "categorical_crossentropy" else labels

    def train(separate: bool):
        set_random_seed(2)
        head = [Dense(units), Activation(act)] if separate else [Dense(units, activation=act)]
        m = Sequential([Dense(6, activation="tanh", input_shape=(5,)), *head])
        m.compile("adam", loss, metrics=["accuracy"])
        hist = m.fit(x, y.astype(np.float32), batch_size=5, epochs=2, verbose=0).history
        return m.get_weights(), hist, m.predict(x)

    w1, h1, p1 = train(False)
    w2, h2, p2 = train(True)
    assert h1 == h2
    np.testing.assert_array_equal(p1, p2)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pool_class", ["MaxPooling2D", "AveragePooling2D"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_convolution_computes_only_the_corner_a_valid_pooling_reads(
    monkeypatch, pool_class, activation
):
    """A 'valid' 2x2 pooling of an odd-sized convolution output never reads its last row and
    column, so the convolution leaves them out: predictions and the weights after two Adam
    steps equal those of the full computation."""
    from edgemine import Input, Model, layers
    from edgemine.models.graph import Graph

    pool = getattr(layers, pool_class)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 13, 13, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)]
    bias = rng.standard_normal(4).astype(np.float32)

    def run():
        set_random_seed(0)
        model = Sequential(
            [
                layers.Conv2D(4, 3, activation=activation, input_shape=(13, 13, 2)),  # 11x11
                pool(2),
                layers.Conv2D(3, 3, padding="same", activation=activation),  # 5x5: reads 4x4
                pool(2),
                Flatten(),
                Dense(3, activation="softmax"),
            ]
        )
        model.compile("adam", "categorical_crossentropy")
        model.layers[0].bias.value[:] = bias
        before = model.predict(x, verbose=0)
        model.train_on_batch(x, y)
        model.train_on_batch(x, y)
        return model, before, model.get_weights()

    cropped, p1, w1 = run()
    assert sorted(cropped._graph.corners().values()) == [(4, 4), (10, 10)]
    monkeypatch.setattr(Graph, "corners", lambda self: {})
    _, p2, w2 = run()
    np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=1e-7)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    monkeypatch.undo()
    # no corner where the whole output is used: read twice, a model output, a 'same' pooling
    inp = Input((13, 13, 2))
    conv = layers.Conv2D(2, 3)(inp)
    twice = Model(inp, layers.Add()([pool(2)(conv), pool(2)(conv)]))
    both = Model(inp, [pool(2)(conv), conv])
    same = Model(inp, pool(2, padding="same")(layers.Conv2D(2, 3)(inp)))
    for model in (twice, both, same):
        assert not model._graph.corners()


@pytest.mark.parametrize("pool", [(2, 2), (3, 1)])  # tiled, and overlapping 'same' windows
@pytest.mark.parametrize("use_bias", [True, False])
def test_conv_bias_and_relu_after_max_pooling_equal_the_plain_order(monkeypatch, pool, use_bias):
    """A ReLU Conv2D read only by a MaxPooling2D leaves its bias and ReLU to the pooling's
    smaller output (max commutes with both): predictions and a training step's weights equal
    the plain order's; a convolution read twice keeps its own."""
    from edgemine import Input, Model
    from edgemine.layers import Add, Conv2D
    from edgemine.models.graph import Graph

    size, stride = pool
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 9, 9, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]

    def run():
        set_random_seed(0)
        model = Sequential(
            [
                Conv2D(4, 3, activation="relu", use_bias=use_bias, input_shape=(9, 9, 2)),
                MaxPooling2D(size, strides=stride, padding="same" if stride == 1 else "valid"),
                Flatten(),
                Dense(3, activation="softmax"),
            ]
        )
        model.compile("sgd", "categorical_crossentropy")
        if use_bias:  # a bias that matters: some windows go negative only through it
            model.layers[0].bias.value[:] = rng.standard_normal(4).astype(np.float32)
        before = model.predict(x, verbose=0)
        model.train_on_batch(x, y)
        return model, before, model.get_weights()

    fused, p1, w1 = run()
    assert len(fused._graph.deferring()) == 1
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 9, 9, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
    monkeypatch.setattr(Conv2D, "defers_bias_activation", False)
    plain, p2, w2 = run()
    assert not plain._graph.deferring()
    np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=1e-7)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    monkeypatch.undo()
    inp = Input((9, 9, 2))
    conv = Conv2D(2, 3, activation="relu", padding="same")(inp)
    both = Model(inp, Add()([MaxPooling2D(1)(conv), conv]))
    assert isinstance(both._graph, Graph) and not both._graph.deferring()
