"""Write the small Keras files that ``tests/test_keras_convert.py`` reads, with Keras's own
predictions, into ``tests/fixtures/keras/``.

Needs Keras 3 with the torch backend (not needed by edgemine or by CI)::

    .venv/bin/pip install keras torch==2.13.0
    KERAS_BACKEND=torch .venv/bin/python tools/make_keras_fixtures.py [NAME ...]

For each model NAME it writes ``NAME.keras`` (Keras 3's zip), some also ``NAME.h5`` (Keras 3's
legacy HDF5 saver) and ``NAME.weights.h5`` (``save_weights``), and ``NAME.npz`` with inputs
``x`` (5 samples) and Keras's predictions ``y5 = predict(x)`` and ``y1 = predict(x[:1])``.
``NAME_keras2.h5`` files carry the same weights in tf.keras 2's HDF5 layout and config
spellings (``batch_input_shape``, ``weight_names`` ending in ``:0``, plain ``dtype`` strings),
written here with h5py because Keras 2 needs TensorFlow. ``refuse_*.keras`` are models edgemine
must refuse with a clear error (a Lambda, GRU(reset_after=False), a layer edgemine lacks; in
functional models a layer returning several tensors, a Lambda, a call with ``training=True``,
an operation on a constant). A model of several inputs has ``x0``, ``x1``, ... instead of
``x``. For the models in ``SGD_STEP`` the ``.npz`` also holds Keras's weights after one SGD
step on ``x`` (``after/LAYER/I``, with ``sgd_labels``, ``sgd_lr``, ``sgd_loss_name``, the
step's ``sgd_loss`` and the predictions after it, ``sgd_y5``). Weights are random (not
trained) but fixed by the seed, biases and batch normalization statistics included, so every
weight matters to the predictions.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "keras"


def _randomize(model: keras.Model, rng: np.random.Generator) -> None:
    """Random weights everywhere (biases and BN moving statistics too); variances positive."""
    for layer in model.layers:
        weights = []
        for var, w in zip(layer.weights, layer.get_weights()):
            if "moving_variance" in var.path:
                weights.append(rng.uniform(0.5, 2.0, w.shape).astype(w.dtype))
            else:
                weights.append(rng.normal(0.0, 0.4, w.shape).astype(w.dtype))
        layer.set_weights(weights)


def seed_cnn() -> keras.Model:
    """The seed CNN's layer stack (three 3x3 convolutions, two poolings, two Dense), narrow."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(4, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(8, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(8, (3, 3), activation="relu"),
            layers.Flatten(),
            layers.Dense(16, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="seed_cnn",
    )


def seed_lstm() -> keras.Model:
    """The seed LSTM's stack (Embedding, two LSTMs, two Dense) with mask_zero, small."""
    return keras.Sequential(
        [
            keras.Input((12,), dtype="int32"),
            layers.Embedding(50, 8, mask_zero=True),
            layers.LSTM(8, return_sequences=True),
            layers.LSTM(6),
            layers.Dense(8, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="seed_lstm",
    )


def gru() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((7, 3)),
            layers.GRU(6, reset_after=True, return_sequences=True),
            layers.GRU(5, go_backwards=True),
            layers.Dense(3, activation="sigmoid"),
        ],
        name="gru",
    )


def bidirectional() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((9,), dtype="int32"),
            layers.Embedding(30, 6, mask_zero=True),
            layers.Bidirectional(layers.LSTM(5, return_sequences=True)),
            layers.Bidirectional(layers.GRU(4), merge_mode="sum"),
            layers.Dense(3, activation="softmax"),
        ],
        name="bidirectional",
    )


def bn_dropout() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((10, 10, 2)),
            layers.Conv2D(6, 3, padding="same", strides=1, use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
            layers.AveragePooling2D(2),
            layers.Dropout(0.3),
            layers.Conv2D(4, 2, strides=2, padding="valid", activation="tanh"),
            layers.GlobalMaxPooling2D(),
            layers.Dense(8),
            layers.BatchNormalization(momentum=0.9, epsilon=1e-2),
            layers.Dropout(0.5),
            layers.Dense(3, activation="softmax"),
        ],
        name="bn_dropout",
    )


def rnn_reshape() -> keras.Model:
    """Dense -> Reshape -> SimpleRNN (sequences, backwards) -> GlobalAveragePooling via Conv."""
    return keras.Sequential(
        [
            keras.Input((12,)),
            layers.Dense(16, activation="tanh"),
            layers.Reshape((4, 4)),
            layers.SimpleRNN(5, return_sequences=True, go_backwards=True),
            layers.Reshape((4, 5, 1)),
            layers.Conv2D(3, (2, 2), padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(2),
        ],
        name="rnn_reshape",
    )


def conv1d_net() -> keras.Model:
    """Sensor windows through every 1-D layer: a causal dilated Conv1D, BN, pooling, a strided
    'same' Conv1D, upsampling, a transposed Conv1D, global pooling."""
    return keras.Sequential(
        [
            keras.Input((16, 3)),
            layers.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="relu"),
            layers.BatchNormalization(),
            layers.MaxPooling1D(2),
            layers.Conv1D(8, 3, strides=2, padding="same"),
            layers.UpSampling1D(2),
            layers.Conv1DTranspose(4, 3, strides=2, padding="same", activation="tanh"),
            layers.AveragePooling1D(2),
            layers.GlobalAveragePooling1D(),
            layers.Dense(3, activation="softmax"),
        ],
        name="conv1d_net",
    )


def lstm_autoencoder() -> keras.Model:
    """keras.io's LSTM autoencoder: LSTM -> RepeatVector -> LSTM (sequences) ->
    TimeDistributed(Dense), with a TimeDistributed(LayerNormalization) between."""
    return keras.Sequential(
        [
            keras.Input((6, 3)),
            layers.LSTM(5),
            layers.RepeatVector(6),
            layers.LSTM(4, return_sequences=True),
            layers.TimeDistributed(layers.LayerNormalization(epsilon=1e-2)),
            layers.TimeDistributed(layers.Dense(3)),
        ],
        name="lstm_autoencoder",
    )


def sequence_blocks() -> keras.Model:
    """A 1-D block with the activation layers: Conv1D -> LayerNormalization -> ReLU ->
    SpatialDropout1D -> Dense -> LayerNormalization over two axes -> LeakyReLU -> Softmax."""
    return keras.Sequential(
        [
            keras.Input((8, 3)),
            layers.Conv1D(6, 3, padding="same"),
            layers.LayerNormalization(),
            layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2),
            layers.SpatialDropout1D(0.3),
            layers.Dense(4),
            layers.LayerNormalization(axis=[1, 2], center=False),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Softmax(axis=1),
        ],
        name="sequence_blocks",
    )


# ---------------------------------------------------------------- functional models


def residual_cnn() -> keras.Model:
    """Conv2D -> Conv2D -> Add (the skip) -> BatchNormalization -> pooling -> Dense."""
    inp = keras.Input((8, 8, 2), name="image")
    c1 = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    c2 = layers.Conv2D(4, 3, padding="same")(c1)
    h = layers.BatchNormalization()(layers.Add()([c1, c2]))
    h = layers.MaxPooling2D(2)(layers.Activation("relu")(h))
    out = layers.Dense(3, activation="softmax")(layers.Flatten()(h))
    return keras.Model(inp, out, name="residual_cnn")


def two_branch_text() -> keras.Model:
    """Token ids -> Embedding(mask_zero) -> an LSTM and a GRU -> Concatenate -> Dense."""
    ids = keras.Input((10,), dtype="int32", name="ids")
    e = layers.Embedding(40, 6, mask_zero=True)(ids)
    h = layers.Concatenate()([layers.LSTM(5)(e), layers.GRU(4)(e)])
    return keras.Model(ids, layers.Dense(3, activation="softmax")(h), name="two_branch_text")


def two_inputs_shared() -> keras.Model:
    """Two inputs through one shared Dense; ``a - b`` (a Keras operation), merge layers."""
    a, b = keras.Input((6,), name="left"), keras.Input((6,), name="right")
    shared = layers.Dense(5, activation="tanh", name="shared")
    ha, hb = shared(a), shared(b)
    parts = [
        ha - hb,
        layers.Multiply()([ha, hb]),
        layers.Average()([ha, hb, layers.Dense(5)(b)]),
        layers.Maximum()([ha, hb]),
        layers.Minimum()([ha, hb]),
    ]
    out = layers.Dense(2, activation="sigmoid")(layers.Concatenate()(parts))
    return keras.Model([a, b], out, name="two_inputs_shared")


def functional_add() -> keras.Model:
    """Two Dense branches added (the model edgemine refused before it read functional files)."""
    inp = keras.Input((4,))
    return keras.Model(inp, layers.Add()([layers.Dense(3)(inp), layers.Dense(3)(inp)]))


MODELS = {
    "seed_cnn": (seed_cnn, "float"),
    "seed_lstm": (seed_lstm, "tokens"),
    "gru": (gru, "float"),
    "bidirectional": (bidirectional, "tokens"),
    "bn_dropout": (bn_dropout, "float"),
    "rnn_reshape": (rnn_reshape, "float"),
    "conv1d_net": (conv1d_net, "float"),
    "residual_cnn": (residual_cnn, "float"),
    "two_branch_text": (two_branch_text, "tokens"),
    "two_inputs_shared": (two_inputs_shared, "float"),
    "functional_add": (functional_add, "float"),
    # issue 16's layers; last, so that the random draws of the models above stay the same
    "lstm_autoencoder": (lstm_autoencoder, "float"),
    "sequence_blocks": (sequence_blocks, "float"),
}
LEGACY_H5 = ("seed_cnn", "seed_lstm", "bidirectional", "bn_dropout", "conv1d_net")
LEGACY_H5 += ("residual_cnn", "two_inputs_shared", "two_branch_text")
LEGACY_H5 += ("lstm_autoencoder", "sequence_blocks")
WEIGHTS_H5 = ("seed_cnn", "seed_lstm")
KERAS2_H5 = ("seed_cnn", "seed_lstm", "bn_dropout", "two_branch_text")
#: models whose weights after one SGD step Keras also records (issue 15's training parity)
SGD_STEP = ("residual_cnn", "two_branch_text")
SGD_LR, SGD_LOSS, SGD_LABELS = 0.1, "sparse_categorical_crossentropy", [0, 1, 2, 0, 1]


def _inputs(model: keras.Model, kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Five samples for each of the model's inputs."""
    return [_input(model, i, kind, rng) for i in range(len(model.inputs))]


def _input(model: keras.Model, i: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    shape = (5, *model.inputs[i].shape[1:])
    if kind == "float":
        return rng.normal(0.0, 1.0, shape).astype(np.float32)
    vocab = next(layer for layer in model.layers if isinstance(layer, layers.Embedding)).input_dim
    x = rng.integers(1, vocab, shape).astype(np.int32)
    # padding of every kind: trailing, leading, in the middle, none, and nearly all
    x[0, -4:] = 0
    x[1, :3] = 0
    x[2, 2:4] = 0
    x[4, 1:] = 0
    return x


# ---------------------------------------------------------------- tf.keras 2's HDF5 layout

_KERAS3_ONLY = {"module", "registered_name", "shared_object_id", "build_config", "optional"}
_KERAS3_LAYER_KEYS = {"quantization_config", "use_cudnn", "lora_rank", "lora_alpha"}


def _keras2_spelling(obj):
    """A Keras 3 config rewritten as tf.keras 2.x wrote it."""
    if isinstance(obj, list):
        return [_keras2_spelling(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if obj.get("class_name") == "DTypePolicy":
        return obj["config"]["name"]
    out = {}
    for key, value in obj.items():
        if key in _KERAS3_ONLY or key in _KERAS3_LAYER_KEYS:
            continue
        if key in ("input_axes", "output_axes"):  # Keras 3 initializer arguments
            continue
        out["batch_input_shape" if key == "batch_shape" else key] = _keras2_spelling(value)
    return out


def _keras2_layer(entry: dict, input_rank: int, timesteps) -> dict:
    entry = _keras2_spelling(entry)
    cfg = entry["config"]
    kind = entry["class_name"]
    if kind in ("LSTM", "GRU"):
        cfg.update(time_major=False, implementation=2)
    if kind == "Embedding":
        cfg["input_length"] = timesteps
    if kind == "BatchNormalization":
        cfg["axis"] = [input_rank]  # Keras 2 stored the resolved axis as a list
        cfg["fused"] = None
    return entry


def _keras2_ref(tensor: dict) -> list:
    return [*tensor["config"]["keras_history"], {}]


def _keras2_functional(model: keras.Model) -> dict:
    """A Keras 3 functional config as tf.keras 2 wrote it: inbound nodes as
    ``[[[name, node, tensor, {}], ...]]``, no mask operations (Keras 2 passes masks unrecorded),
    input_layers and output_layers as lists of ``[name, node, tensor]``."""
    config = json.loads(json.dumps(model.get_config()))
    entries = []
    for entry in config["layers"]:
        if entry["class_name"] == "NotEqual":
            continue
        nodes = []
        for node in entry["inbound_nodes"]:
            arg = node["args"][0]
            refs = arg if isinstance(arg, list) else [arg]
            nodes.append([_keras2_ref(t) for t in refs])
        if entry["class_name"] != "InputLayer":
            entry = _keras2_layer(entry, 3, None)
        entry = _keras2_spelling({k: v for k, v in entry.items() if k != "inbound_nodes"})
        entry["inbound_nodes"] = nodes
        entries.append(entry)
    listed = {
        key: [config[key]] if isinstance(config[key][0], str) else config[key]
        for key in ("input_layers", "output_layers")
    }
    layers_config = {"name": model.name, "layers": entries, **listed}
    return {"class_name": "Functional", "config": layers_config}


def write_keras2_h5(model: keras.Model, path: Path) -> None:
    if not isinstance(model, keras.Sequential):
        _write_keras2_file(path, _keras2_functional(model), model.layers)
        return
    config = json.loads(json.dumps(model.get_config()))
    entries = []
    rank = len(model.input_shape) - 1
    for entry, layer in zip(config["layers"][1:], model.layers):
        entries.append(_keras2_layer(entry, rank, model.input_shape[1]))
        rank = len(layer.output.shape) - 1
    entries.insert(0, _keras2_spelling(config["layers"][0]))
    entries[0]["config"]["name"] = f"{model.layers[0].name}_input"
    # Keras 2 put the input shape on the first layer too
    entries[1]["config"]["batch_input_shape"] = entries[0]["config"]["batch_input_shape"]
    model_config = {
        "class_name": "Sequential",
        "config": {"name": model.name, "layers": entries},
    }
    _write_keras2_file(path, model_config, model.layers)


def _write_keras2_file(path: Path, model_config: dict, model_layers: list) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(model_config)
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [layer.name.encode() for layer in model_layers]
        g.attrs["backend"] = b"tensorflow"
        g.attrs["keras_version"] = b"2.15.0"
        for layer in model_layers:
            lg = g.create_group(layer.name)
            names = [_keras2_weight_name(layer, var) for var in layer.weights]
            lg.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, layer.get_weights()):
                lg.create_dataset(name, data=value)


def _keras2_weight_name(layer, var) -> str:
    """tf.keras 2's names: ``dense/kernel:0``, ``lstm/lstm_cell/kernel:0``."""
    leaf = var.path.split("/")[-1]
    if isinstance(layer, (layers.LSTM, layers.GRU, layers.SimpleRNN)):
        cell = {"LSTM": "lstm_cell", "GRU": "gru_cell", "SimpleRNN": "simple_rnn_cell"}
        return f"{layer.name}/{cell[type(layer).__name__]}/{leaf}:0"
    return f"{layer.name}/{leaf}:0"


# ---------------------------------------------------------------- models to refuse


def _refused_functional() -> dict[str, keras.Model]:
    """Functional models with calls edgemine cannot make as Keras does."""
    seq = keras.Input((5, 2))
    _, state_h, _ = layers.LSTM(3, return_state=True)(seq)
    inp = keras.Input((4,))
    dense = layers.Dense(3)(inp)
    return {
        "refuse_return_state": keras.Model(seq, layers.Dense(2)(state_h)),
        "refuse_functional_lambda": keras.Model(inp, layers.Lambda(lambda t: t * 2.0)(dense)),
        "refuse_training_kwarg": keras.Model(inp, layers.Dropout(0.5)(dense, training=True)),
        "refuse_scalar_op": keras.Model(inp, dense * 2.0),
    }


def refused_models() -> dict[str, keras.Model]:
    sequential = {
        "refuse_lambda": keras.Sequential(
            [keras.Input((4,)), layers.Lambda(lambda t: t * 2.0), layers.Dense(2)]
        ),
        "refuse_gru_reset_before": keras.Sequential(
            [keras.Input((5, 2)), layers.GRU(3, reset_after=False)]
        ),
        "refuse_conv3d": keras.Sequential(
            [keras.Input((4, 4, 4, 1)), layers.Conv3D(2, 2), layers.Flatten(), layers.Dense(2)]
        ),
    }
    return {**sequential, **_refused_functional()}


def _sgd_step(model: keras.Model, x) -> dict[str, np.ndarray]:
    """One SGD step on the five samples (after the model was saved): the weights after it,
    ``after/LAYER/I`` in Keras's order, and what the step was."""
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=SGD_LR), loss=SGD_LOSS)
    labels = np.array(SGD_LABELS, np.int32)
    loss = model.train_on_batch(x, labels)
    out = {"sgd_labels": labels, "sgd_lr": np.float32(SGD_LR), "sgd_loss_name": SGD_LOSS}
    out["sgd_loss"] = np.float32(loss)
    out["sgd_y5"] = model.predict(x, verbose=0)
    for layer in model.layers:
        for i, w in enumerate(layer.get_weights()):
            out[f"after/{layer.name}/{i}"] = w
    return out


def main(only: list[str]) -> int:
    """Write every fixture, or with model names given only theirs (the others' random draws
    are still made, so each model gets the weights and inputs a full run gives it)."""
    unknown = set(only) - set(MODELS) - set(refused_models())
    if unknown:
        raise SystemExit(f"unknown models {sorted(unknown)}; known: {', '.join(MODELS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    for name, (make, kind) in MODELS.items():
        model = make()
        _randomize(model, rng)
        xs = _inputs(model, kind, rng)
        if only and name not in only:
            continue
        x = xs[0] if len(xs) == 1 else xs
        y5 = model.predict(x, verbose=0)
        y1 = model.predict([a[:1] for a in xs] if len(xs) > 1 else x[:1], verbose=0)
        arrays = {"x": x} if len(xs) == 1 else {f"x{i}": a for i, a in enumerate(xs)}
        model.save(OUT / f"{name}.keras")
        if name in LEGACY_H5:
            model.save(OUT / f"{name}.h5")
        if name in WEIGHTS_H5:
            model.save_weights(OUT / f"{name}.weights.h5")
        if name in KERAS2_H5:
            write_keras2_h5(model, OUT / f"{name}_keras2.h5")
        if name in SGD_STEP:  # last: the step changes the weights
            arrays.update(_sgd_step(model, x))
        np.savez(OUT / f"{name}.npz", **arrays, y5=y5, y1=y1)
        print(f"{name}: {model.count_params()} parameters, output {y5.shape}")
    for name, model in refused_models().items():
        if not only or name in only:
            model.save(OUT / f"{name}.keras")
    for path in sorted(OUT.iterdir()):
        print(f"  {path.name}: {path.stat().st_size / 1024:.1f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
