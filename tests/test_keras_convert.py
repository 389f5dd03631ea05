"""Keras files to edgemine and ONNX (``edgemine.keras``, ``edgemine convert``), against files and
predictions that Keras 3 itself wrote (``tools/make_keras_fixtures.py``; no Keras needed here)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import h5py
import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

import edgemine
from edgemine.cli import main
from edgemine.keras import KerasFileError, load_keras, open_keras
from edgemine.keras.config import SPECS
from edgemine.keras.weights import expected_shapes
from edgemine.models import load_model

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "keras"
MODELS = sorted(p.stem for p in FIXTURES.glob("*.npz"))
FILES = sorted(
    p.name
    for p in FIXTURES.iterdir()
    if p.suffix in (".keras", ".h5")
    and not p.name.startswith("refuse_")
    and not p.name.endswith(".weights.h5")
)
TOL = 1e-5


def _base(name: str) -> str:
    return name.split(".")[0].removesuffix("_keras2")


def _expected(name: str) -> dict:
    """The fixture's arrays; ``x`` is a list of arrays for a model of several inputs."""
    with np.load(FIXTURES / f"{_base(name)}.npz") as z:
        out = {k: z[k] for k in z.files}
    several = sorted(k for k in out if re.fullmatch(r"x\d+", k))
    if several:
        out["x"] = [out.pop(k) for k in several]
    return out


def _first(x, n: int = 1):
    """The first ``n`` samples of one input array or of each of several."""
    return [a[:n] for a in x] if isinstance(x, list) else x[:n]


def _ort_predict(path: Path, x) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = x if isinstance(x, list) else [x]
    dtype = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
    feed = {inp.name: a.astype(dtype[inp.type]) for inp, a in zip(sess.get_inputs(), xs)}
    return sess.run(None, feed)[0]


FUNCTIONAL = ("residual_cnn", "two_branch_text", "two_inputs_shared", "functional_add")


def test_the_fixtures_cover_the_issue():
    assert {"seed_cnn", "seed_lstm", "gru", "bidirectional", "bn_dropout"} <= set(MODELS)
    # issue 16: RepeatVector, TimeDistributed, LayerNormalization, ReLU, LeakyReLU, Softmax,
    # SpatialDropout1D, in .keras and legacy .h5 files
    assert {"lstm_autoencoder.h5", "sequence_blocks.h5"} <= set(FILES)
    assert set(FUNCTIONAL) <= set(MODELS)
    # functional models as Keras 3 writes them, in its legacy .h5 and in tf.keras 2's layout
    assert {"residual_cnn.h5", "two_branch_text.h5", "two_branch_text_keras2.h5"} <= set(FILES)
    kinds = {p.suffix for p in FIXTURES.iterdir()}
    assert {".keras", ".h5", ".npz"} <= kinds
    assert any(n.endswith("_keras2.h5") for n in FILES)
    assert all(p.stat().st_size < 64 * 1024 for p in FIXTURES.iterdir())


# ------------------------------------------------------------------ agreement with Keras


@pytest.mark.parametrize("name", FILES)
def test_load_keras_predicts_like_keras(name, tmp_path):
    ref = _expected(name)
    model = load_keras(FIXTURES / name)
    assert np.abs(model.predict(ref["x"]) - ref["y5"]).max() <= TOL
    assert np.abs(model.predict(_first(ref["x"])) - ref["y1"]).max() <= TOL
    model.save(tmp_path / "m.edgemine")  # and as an edgemine file
    assert np.abs(load_model(tmp_path / "m.edgemine").predict(ref["x"]) - ref["y5"]).max() <= TOL


@pytest.mark.parametrize("name", FILES)
def test_convert_to_onnx_matches_keras(name, tmp_path):
    ref = _expected(name)
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(main, ["convert", str(FIXTURES / name), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    assert np.abs(_ort_predict(out, ref["x"]) - ref["y5"]).max() <= TOL
    assert np.abs(_ort_predict(out, _first(ref["x"])) - ref["y1"]).max() <= TOL


@pytest.mark.parametrize("base", ["residual_cnn", "two_branch_text"])
def test_one_sgd_step_agrees_with_keras(base, tmp_path):
    """Issue 15's training parity: from Keras's weights, one SGD step on a fixed batch gives
    Keras's weights after its step (BatchNormalization's moving statistics too) to 1e-4, and
    the ONNX export of the stepped model gives its predictions to 1e-5."""
    ref = _expected(base)
    model = load_keras(FIXTURES / f"{base}.keras")
    lr = float(ref["sgd_lr"])
    model.compile(
        optimizer=edgemine.optimizers.SGD(learning_rate=lr), loss=str(ref["sgd_loss_name"])
    )
    loss = model.train_on_batch(ref["x"], ref["sgd_labels"])
    assert abs(loss - float(ref["sgd_loss"])) <= 1e-4
    compared = 0
    for layer in model.layers:
        for i, w in enumerate(layer.get_weights()):
            assert np.abs(w - ref[f"after/{layer.name}/{i}"]).max() <= 1e-4, (layer.name, i)
            compared += 1
    assert compared == sum(1 for k in ref if k.startswith("after/"))
    y = model.predict(ref["x"])
    assert np.abs(y - ref["sgd_y5"]).max() <= 1e-4
    edgemine.onnx.export(model, tmp_path / "stepped.onnx")
    assert np.abs(_ort_predict(tmp_path / "stepped.onnx", ref["x"]) - y).max() <= TOL


@pytest.mark.parametrize("base", ["seed_cnn", "seed_lstm"])
def test_weights_h5_into_an_edgemine_model(base, tmp_path):
    ref = _expected(base)
    # an edgemine model of the same architecture, here from the legacy file, saved untrained
    arch = load_keras(FIXTURES / f"{base}.h5")
    for layer in arch.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    arch_file = tmp_path / "arch.edgemine"
    arch.save(arch_file)
    model = load_keras(FIXTURES / f"{base}.weights.h5", model=load_model(arch_file))
    assert np.abs(model.predict(ref["x"]) - ref["y5"]).max() <= TOL
    out = tmp_path / "w.onnx"
    args = ["convert", str(FIXTURES / f"{base}.weights.h5"), "--model", str(arch_file)]
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert np.abs(_ort_predict(out, ref["x"]) - ref["y5"]).max() <= TOL


def test_weights_h5_into_a_functional_edgemine_model(tmp_path):
    """A Keras 3 .weights.h5 (the archive's model.weights.h5) into a functional model whose
    layers of weights are one of each class; several of one class are refused."""
    ref = _expected("two_branch_text")
    path = tmp_path / "text.weights.h5"
    path.write_bytes(_members("two_branch_text.keras")["model.weights.h5"])
    model = load_keras(FIXTURES / "two_branch_text.keras")
    for layer in model.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    load_keras(path, model=model)
    assert np.abs(model.predict(ref["x"]) - ref["y5"]).max() <= TOL
    path = tmp_path / "cnn.weights.h5"
    path.write_bytes(_members("residual_cnn.keras")["model.weights.h5"])
    with pytest.raises(KerasFileError, match="a functional model with several Conv2D layers"):
        load_keras(path, model=load_keras(FIXTURES / "residual_cnn.keras"))


def test_legacy_weights_only_h5_into_an_edgemine_model(tmp_path):
    """Keras 2's ``save_weights("x.h5")``: the model_weights group's layout at the top level."""
    ref = _expected("seed_lstm")
    path = tmp_path / "lstm_weights.h5"
    with h5py.File(FIXTURES / "seed_lstm_keras2.h5") as src, h5py.File(path, "w") as dst:
        group = src["model_weights"]
        for key, value in group.attrs.items():
            dst.attrs[key] = value
        for name in group:
            group.copy(group[name], dst, name=name)
    model = load_keras(FIXTURES / "seed_lstm_keras2.h5")
    for layer in model.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    load_keras(path, model=model)
    assert np.abs(model.predict(ref["x"]) - ref["y5"]).max() <= TOL
    result = CliRunner().invoke(main, ["convert", str(path), "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 1 and "--model" in result.output


def test_weights_h5_needs_a_model_and_the_same_architecture(tmp_path):
    with pytest.raises(KerasFileError, match="weights only; give the edgemine model"):
        load_keras(FIXTURES / "seed_cnn.weights.h5")
    other = load_keras(FIXTURES / "seed_lstm.keras")
    with pytest.raises(KerasFileError, match="weights for layers the model lacks"):
        load_keras(FIXTURES / "seed_cnn.weights.h5", model=other)


def test_expected_shapes_equal_the_built_weights():
    """The shapes checked before reading are the ones each layer builds."""
    for name in FILES:
        model = load_keras(FIXTURES / name)
        for layer in model.layers:
            if type(layer).__name__ != "InputLayer":
                got = expected_shapes(layer, layer.input_shape)
                assert got == [v.shape for v in layer.variables], layer


def test_load_keras_is_on_the_package_and_the_model_trains_saves_and_exports(tmp_path):
    ref = _expected("bn_dropout")
    model = edgemine.load_keras(FIXTURES / "bn_dropout.keras")
    model.save(tmp_path / "m.edgemine")
    again = load_model(tmp_path / "m.edgemine")
    assert np.abs(again.predict(ref["x"]) - ref["y5"]).max() <= TOL
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = model.get_weights()
    model.fit(ref["x"], np.array([0, 1, 2, 0, 1]), epochs=1, batch_size=5, verbose=0)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, model.get_weights()))


def test_convert_to_edgemine_and_to_a_pi_bundle(tmp_path):
    ref = _expected("seed_cnn")
    runner = CliRunner()
    out = tmp_path / "cnn.edgemine"
    result = runner.invoke(main, ["convert", str(FIXTURES / "seed_cnn.keras"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert np.abs(load_model(out).predict(ref["x"]) - ref["y5"]).max() <= TOL
    onnx_out, bundle = tmp_path / "cnn.onnx", tmp_path / "pi"
    args = ["convert", str(FIXTURES / "seed_cnn.h5"), "-o", str(onnx_out), "--opset", "13"]
    result = runner.invoke(main, [*args, "--nchw", "--bundle", str(bundle), "--target", "rpi"])
    assert result.exit_code == 0, result.output
    nchw = ref["x"].transpose(0, 3, 1, 2)
    assert np.abs(_ort_predict(onnx_out, nchw) - ref["y5"]).max() <= TOL
    assert {"model.onnx", "run.py", "README.md"} <= {p.name for p in bundle.iterdir()}
    assert np.abs(_ort_predict(bundle / "model.onnx", nchw) - ref["y5"]).max() <= TOL


def test_a_text_model_bundles_with_its_vocabulary_only(tmp_path):
    ref = _expected("seed_lstm")
    model = load_keras(FIXTURES / "seed_lstm.keras")
    assert model.preprocessing == {"kind": "text", "num_words": 50, "maxlen": 12}
    runner = CliRunner()
    args = ["convert", str(FIXTURES / "seed_lstm.keras"), "-o", str(tmp_path / "l.onnx")]
    result = runner.invoke(main, [*args, "--bundle", str(tmp_path / "b")])
    assert result.exit_code == 1 and "needs its tokenizer: --vocab" in result.output
    assert not (tmp_path / "b").exists()
    vocab = tmp_path / "word_index.json"
    vocab.write_text(json.dumps({f"w{i}": i for i in range(1, 80)}))
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([f"class{i}" for i in range(10)]))
    extra = ["--bundle", str(tmp_path / "b"), "--vocab", str(vocab), "--labels", str(labels)]
    result = runner.invoke(main, [*args, *extra])
    assert result.exit_code == 0, result.output
    pre = json.loads((tmp_path / "b" / "preprocessing.json").read_text())
    assert pre["num_words"] == 50 and max(pre["word_index"].values()) == 49
    assert json.loads((tmp_path / "b" / "labels.json").read_text())[3] == "class3"
    assert np.abs(_ort_predict(tmp_path / "b" / "model.onnx", ref["x"]) - ref["y5"]).max() <= TOL


def test_convert_int8_with_calibration(tmp_path):
    ref = _expected("seed_cnn")
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.repeat(ref["x"], 4, axis=0))
    out = tmp_path / "cnn_int8.onnx"
    args = ["convert", str(FIXTURES / "seed_cnn.keras"), "-o", str(out), "--int8"]
    result = CliRunner().invoke(main, [*args, "--calibration", str(calib)])
    assert result.exit_code == 0, result.output
    assert "int8" in result.output
    y = _ort_predict(out, ref["x"])
    assert y.shape == ref["y5"].shape
    assert (y.argmax(1) == ref["y5"].argmax(1)).mean() >= 0.6  # int8: close, not equal


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "x.pt"], "must end in .onnx or .edgemine"),
        (["-o", "x.edgemine", "--opset", "13"], "need an .onnx output or --bundle"),
        (["-o", "x.onnx", "--calibration", "CALIB"], "--calibration needs --int8"),
        (["-o", "x.onnx", "--target", "rpi"], "--target needs --bundle"),
        (["-o", "x.onnx", "--labels", "CALIB"], "--labels and --vocab need --bundle"),
    ],
)
def test_convert_option_errors_are_one_line(args, message, tmp_path):
    args = [a.replace("CALIB", str(FIXTURES / "seed_cnn.npz")) for a in args]
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    result = CliRunner().invoke(main, ["convert", str(FIXTURES / "seed_cnn.keras"), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_inspect_reads_keras_files():
    result = CliRunner().invoke(main, ["inspect", str(FIXTURES / "seed_lstm.keras")])
    assert result.exit_code == 0, result.output
    assert "LSTM" in result.output and "Total params: 1,450" in result.output


# ------------------------------------------------------------------ refused, clearly


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("refuse_lambda", r"layer 'lambda' \(Lambda\): Lambda layers hold Python code"),
        ("refuse_functional_lambda", r"\(Lambda\): Lambda layers hold Python code"),
        ("refuse_return_state", r"\(LSTM\): option return_state=True is not supported"),
        ("refuse_training_kwarg", r"\(Dropout\): it is called with training=True"),
        ("refuse_scalar_op", r"\(Multiply\): the operation must take two tensors"),
        ("refuse_gru_reset_before", r"\(GRU\): option reset_after=False is not supported"),
        ("refuse_conv3d", r"layer 'conv3d' \(Conv3D\): Keras layer Conv3D is not supported"),
    ],
)
def test_models_keras_wrote_that_edgemine_refuses(name, message, tmp_path):
    with pytest.raises(KerasFileError, match=message) as info:
        load_keras(FIXTURES / f"{name}.keras")
    assert "\n" not in str(info.value)
    result = CliRunner().invoke(
        main, ["convert", str(FIXTURES / f"{name}.keras"), "-o", str(tmp_path / "x.onnx")]
    )
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1


def _members(name: str) -> dict[str, bytes]:
    with zipfile.ZipFile(FIXTURES / name) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write_zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _with_config(tmp_path: Path, name: str, edit) -> Path:
    members = _members(name)
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config)
    return _write_zip(tmp_path / f"edited_{name}", members)


def test_the_refused_functional_models_name_the_layer(tmp_path):
    with pytest.raises(KerasFileError, match=r"^refuse_return_state.keras: layer 'lstm\w*'"):
        load_keras(FIXTURES / "refuse_return_state.keras")


def _entry(config: dict, name_start: str) -> dict:
    return next(e for e in config["config"]["layers"] if e["name"].startswith(name_start))


def _tensor(name: str, node: int = 0, index: int = 0) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [name, node, index]}}


def _refuse_shared_on_two_shapes(config):
    """The shared Dense's second call reads Dense(5)(right): (5,) where its first reads (6,)."""
    _entry(config, "shared")["inbound_nodes"][1]["args"][0] = _tensor(
        _entry(config, "dense")["name"]
    )


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        (
            "two_branch_text.keras",
            lambda c: _entry(c, "gru")["inbound_nodes"][0]["kwargs"].update(mask=_tensor("ids")),
            r"\(GRU\): it is called with mask='ids', which is not the Embedding mask",
        ),
        (
            "two_branch_text.keras",
            lambda c: _entry(c, "lstm")["inbound_nodes"][0]["kwargs"].update(
                initial_state=[_tensor("ids")]
            ),
            r"\(LSTM\): it is called with initial_state=",
        ),
        (
            "two_branch_text.keras",
            lambda c: _entry(c, "lstm")["inbound_nodes"][0]["args"].append(_tensor("ids")),
            r"\(LSTM\): it is called with 2 positional arguments",
        ),
        (
            "two_inputs_shared.keras",
            lambda c: _entry(c, "subtract").update(class_name="Matmul"),
            r"\(Matmul\): the operation 'Matmul' is not supported",
        ),
        (
            "two_inputs_shared.keras",
            lambda c: _entry(c, "multiply")["inbound_nodes"][0]["args"][0].append(_tensor("left")),
            r"\(Multiply\): input .* needs inputs of one shape",
        ),
        (
            "two_inputs_shared.keras",
            _refuse_shared_on_two_shapes,
            r"\(Dense\): a shared layer must take one input shape",
        ),
        (
            "two_inputs_shared.keras",
            lambda c: _entry(c, "shared")["inbound_nodes"][0]["args"].__setitem__(
                0, _tensor("nowhere")
            ),
            r"'shared' \(Dense\): it reads call 0 of 'nowhere', which is not a layer call",
        ),
        (
            "two_inputs_shared.keras",
            lambda c: _entry(c, "shared")["inbound_nodes"][0]["args"].__setitem__(
                0, _tensor("shared", 0)
            ),
            "the layer graph has a cycle",
        ),
        (
            "two_inputs_shared.keras",
            lambda c: c["config"].update(output_layers=[["shared", 5, 0]]),
            "model output 'shared' call 5 is not made by the model",
        ),
        (
            "functional_add.keras",
            lambda c: c.update(class_name="Model", registered_name="Model", config={"name": "m"}),
            "a subclassed Keras model holds Python code",
        ),
    ],
)
def test_functional_calls_edgemine_cannot_make_are_refused(name, edit, message, tmp_path):
    with pytest.raises(KerasFileError, match=message) as info:
        load_keras(_with_config(tmp_path, name, edit))
    assert "\n" not in str(info.value)


def test_a_dict_of_inputs_and_outputs_is_read_in_keras_order(tmp_path):
    ref = _expected("two_inputs_shared")

    def as_dict(config):
        config["config"]["input_layers"] = {"b": ["right", 0, 0], "a": ["left", 0, 0]}

    model = load_keras(_with_config(tmp_path, "two_inputs_shared.keras", as_dict))
    assert model.input_names == ["left", "right"]  # a dict flattens by key, as in Keras
    assert np.abs(model.predict(ref["x"]) - ref["y5"]).max() <= TOL


def test_a_functional_text_model_says_what_its_tokenizer_must_give():
    model = load_keras(FIXTURES / "two_branch_text.keras")
    assert model.preprocessing == {"kind": "text", "num_words": 40, "maxlen": 10}
    assert load_keras(FIXTURES / "two_inputs_shared.keras").preprocessing is None


def _keras2_h5(path: Path, layers: list, inputs: list, outputs: list, weights: dict) -> Path:
    """A legacy .h5 as tf.keras 2 wrote a functional model (by hand: Keras 2 needs TensorFlow)."""
    config = {"name": "m", "layers": layers, "input_layers": inputs, "output_layers": outputs}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Functional", "config": config})
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [e["config"]["name"] for e in layers]
        for entry in layers:
            name = entry["config"]["name"]
            g = group.create_group(name)
            names = [f"{name}/{k}:0" for k in weights.get(name, {})]
            g.attrs["weight_names"] = names
            for n, value in zip(names, weights.get(name, {}).values()):
                g[n] = value
    return path


def _keras2_entry(kind: str, name: str, nodes: list, **config) -> dict:
    return {
        "class_name": kind,
        "name": name,
        "config": {"name": name, **config},
        "inbound_nodes": nodes,
    }


def test_keras2_functional_with_a_shared_layer_and_tf_op_lambdas(tmp_path):
    """tf.keras 2's form: ``[[name, node, tensor, kwargs]]`` nodes; ``a * b`` as a TFOpLambda
    whose second tensor is the keyword ``y``; a shared Dense called on both inputs."""
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(3, 2)).astype("f4"), rng.normal(size=2).astype("f4")
    shape = {"batch_input_shape": [None, 3], "dtype": "float32"}
    layers = [
        _keras2_entry("InputLayer", "a", [], **shape),
        _keras2_entry("InputLayer", "b", [], **shape),
        _keras2_entry("Dense", "d", [[["a", 0, 0, {}]], [["b", 0, 0, {}]]], units=2),
        _keras2_entry(
            "TFOpLambda",
            "tf.math.multiply",
            [[["d", 0, 0, {"y": ["d", 1, 0], "name": None}]]],
            function="math.multiply",
        ),
        _keras2_entry(
            "TFOpLambda",
            "tf.__operators__.add",
            [[["tf.math.multiply", 0, 0, {"y": ["d", 0, 0], "name": None}]]],
            function="__operators__.add",
        ),
    ]

    def write(name: str) -> Path:
        weights = {"d": {"kernel": kernel, "bias": bias}}
        outputs = [["tf.__operators__.add", 0, 0]]
        return _keras2_h5(tmp_path / name, layers, [["a", 0, 0], ["b", 0, 0]], outputs, weights)

    xa, xb = rng.normal(size=(4, 3)).astype("f4"), rng.normal(size=(4, 3)).astype("f4")
    da, db = xa @ kernel + bias, xb @ kernel + bias
    model = load_keras(write("k2.h5"))
    assert np.abs(model.predict([xa, xb]) - (da * db + da)).max() <= TOL
    layers[3]["config"]["function"] = "math.reduce_sum"
    with pytest.raises(KerasFileError, match=r"\(TFOpLambda\): the operation 'math.reduce_sum'"):
        load_keras(write("k3.h5"))
    layers[3]["config"]["function"] = "math.multiply"
    layers[2]["inbound_nodes"][0][0][3] = {"training": True}
    with pytest.raises(KerasFileError, match=r"'d' \(Dense\): it is called with training=True"):
        load_keras(write("k4.h5"))


def test_inspect_reads_functional_keras_files():
    result = CliRunner().invoke(main, ["inspect", str(FIXTURES / "two_inputs_shared.h5")])
    assert result.exit_code == 0, result.output
    assert "shared (Dense)" in result.output and "Total params: 122" in result.output


def _layer(config: dict, class_name: str) -> dict:
    return next(e for e in config["config"]["layers"] if e["class_name"] == class_name)


@pytest.mark.parametrize(
    ("name", "kind", "key", "value", "message"),
    [
        ("seed_cnn.keras", "Dense", "activation", "gelu", "activation 'gelu' is not supported"),
        ("seed_lstm.keras", "LSTM", "stateful", True, "option stateful=True is not supported"),
        ("seed_lstm.keras", "LSTM", "return_state", True, "return_state=True is not supported"),
        ("seed_cnn.keras", "Conv2D", "dilation_rate", [2, 2], r"dilation_rate=\[2, 2\]"),
        ("seed_cnn.keras", "Conv2D", "groups", 2, "option groups=2 is not supported"),
        ("seed_cnn.keras", "Conv2D", "data_format", "channels_first", "data_format="),
        ("seed_cnn.keras", "Dense", "kernel_regularizer", {"class_name": "L2"}, "regularizer"),
        ("seed_cnn.keras", "Dense", "flux_capacitor", 1, "option 'flux_capacitor'"),
        ("seed_cnn.keras", "Dense", "units", "many", "Dense units must be a positive int"),
        ("seed_cnn.keras", "Dense", "dtype", "mixed_float16", "dtype 'mixed_float16'"),
        ("bn_dropout.keras", "BatchNormalization", "renorm", True, "renorm=True"),
        ("bn_dropout.keras", "BatchNormalization", "axis", 1, "option axis=1 is not supported"),
        ("bn_dropout.keras", "Dropout", "noise_shape", [None, 1, 1, 2], "noise_shape"),
        ("sequence_blocks.keras", "LayerNormalization", "rms_scaling", True, "rms_scaling=True"),
        ("sequence_blocks.keras", "LayerNormalization", "gamma_constraint", {}, "gamma_constr"),
        ("sequence_blocks.keras", "LayerNormalization", "axis", [1], "trailing axes only"),
        ("sequence_blocks.keras", "SpatialDropout1D", "noise_shape", [None, 1, 6], "noise_shape"),
        ("sequence_blocks.keras", "SpatialDropout1D", "data_format", "x", "'data_format'"),
        ("sequence_blocks.keras", "ReLU", "negative_slope", -1, "must be a finite number >= 0"),
        ("sequence_blocks.keras", "Softmax", "axis", 0, "not a non-batch axis"),
        ("lstm_autoencoder.keras", "RepeatVector", "n", 0, "n must be a positive int"),
        ("lstm_autoencoder.keras", "TimeDistributed", "layer", None, "must be an object"),
        (
            "lstm_autoencoder.keras",
            "TimeDistributed",
            "layer",
            {"class_name": "Lambda", "config": {"name": "f"}},
            "Lambda layers hold Python code",
        ),
        (
            "lstm_autoencoder.keras",
            "TimeDistributed",
            "layer",
            {"class_name": "Embedding", "config": {"input_dim": 3, "output_dim": 2}},
            "cannot wrap Embedding",
        ),
        (
            "lstm_autoencoder.keras",
            "TimeDistributed",
            "layer",
            {"class_name": "Add", "config": {"name": "add"}},
            "it wraps Add, which takes several inputs",
        ),
        (
            "seed_cnn.keras",
            "Dense",
            "kernel_initializer",
            {"class_name": "TruncatedNormal", "config": {}},
            "kernel_initializer 'TruncatedNormal' is not supported",
        ),
        (
            "seed_cnn.keras",
            "Dense",
            "kernel_initializer",
            {"class_name": "RandomNormal", "config": {"stddev": 1.0}},
            r"RandomNormal\(stddev=1.0\) is not supported",
        ),
    ],
)
def test_options_edgemine_lacks_are_refused_naming_layer_and_option(
    name, kind, key, value, message, tmp_path
):
    def edit(config):
        _layer(config, kind)["config"][key] = value

    with pytest.raises(KerasFileError, match=message) as info:
        load_keras(_with_config(tmp_path, name, edit))
    assert f"({kind})" in str(info.value) and "\n" not in str(info.value)


def test_keras2_spellings_of_the_sequence_layers_are_read(tmp_path):
    """tf.keras 2 wrote LeakyReLU's slope as ``alpha`` and LayerNormalization's axis resolved
    (``[2]``): the same model, the same predictions."""
    ref = _expected("sequence_blocks")

    def keras2(config):
        leaky = _layer(config, "LeakyReLU")["config"]
        leaky["alpha"] = leaky.pop("negative_slope")
        norm = _layer(config, "LayerNormalization")["config"]
        norm["axis"] = [2]
        del norm["rms_scaling"]

    model = load_keras(_with_config(tmp_path, "sequence_blocks.keras", keras2))
    assert np.abs(model.predict(ref["x"]) - ref["y5"]).max() <= TOL
    assert model.layers[6].negative_slope == pytest.approx(0.2)


def test_time_distributed_keeps_the_wrapped_layer_and_its_weights():
    model = load_keras(FIXTURES / "lstm_autoencoder.keras")
    wrapped = [type(layer.layer).__name__ for layer in model.layers if hasattr(layer, "layer")]
    assert wrapped == ["LayerNormalization", "Dense"]
    assert [v.shape for v in model.layers[-1].variables] == [(4, 3), (3,)]


@pytest.mark.parametrize("base", ["lstm_autoencoder", "sequence_blocks"])
def test_weights_h5_of_the_sequence_layers_both_ways(base, tmp_path):
    """Keras 3's .weights.h5 (the one inside the .keras) loads into the model, and edgemine's
    save_weights writes the same datasets under the same paths (TimeDistributed's under
    ``layer/vars``, LayerNormalization's gamma then beta)."""
    ref = _expected(base)
    keras_file = tmp_path / f"{base}.weights.h5"
    keras_file.write_bytes(_members(f"{base}.keras")["model.weights.h5"])
    model = load_keras(FIXTURES / f"{base}.h5")
    for layer in model.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    load_keras(keras_file, model=model)
    assert np.abs(model.predict(ref["x"]) - ref["y5"]).max() <= TOL
    ours = tmp_path / "ours.weights.h5"
    model.save_weights(ours)

    def datasets(path):
        found = {}
        with h5py.File(path) as f:
            f.visititems(
                lambda p, o: found.update({p: o[()]}) if isinstance(o, h5py.Dataset) else 0
            )
        return found

    theirs, mine = datasets(keras_file), datasets(ours)
    assert sorted(theirs) == sorted(mine)
    assert all(np.array_equal(theirs[k], mine[k]) for k in theirs)


def test_a_mask_keras_would_apply_and_edgemine_would_not_is_refused(tmp_path):
    """Keras's Softmax zeroes masked positions and TimeDistributed hands a mask to a layer
    that takes one; edgemine's pass it on. A TimeDistributed(Dense) takes no mask: it loads."""

    def insert(entry):
        def edit(config):
            layers = config["config"]["layers"]
            first_lstm = layers.index(_layer(config, "LSTM"))
            layers.insert(first_lstm + 1, entry)

        return edit

    softmax = {"class_name": "Softmax", "config": {"name": "soft", "axis": -1}}
    with pytest.raises(KerasFileError, match="'soft' .Softmax.: an Embedding mask reaches it"):
        load_keras(_with_config(tmp_path, "seed_lstm.keras", insert(softmax)))
    inner = {"class_name": "SimpleRNN", "config": {"name": "rnn", "units": 2}}
    wrapped = {"class_name": "TimeDistributed", "config": {"name": "td", "layer": inner}}
    with pytest.raises(KerasFileError, match="'td' .TimeDistributed.: an Embedding mask"):
        load_keras(_with_config(tmp_path, "seed_lstm.keras", insert(wrapped)))
    relu = {"class_name": "ReLU", "config": {"name": "relu"}}
    ref = _expected("seed_lstm")
    model = load_keras(_with_config(tmp_path, "seed_lstm.keras", insert(relu)))
    assert model.predict(ref["x"]).shape == ref["y5"].shape


def test_custom_objects_and_nested_models_are_refused(tmp_path):
    def custom(config):
        _layer(config, "Dense")["registered_name"] = "my_package>MyDense"

    with pytest.raises(KerasFileError, match="'my_package>MyDense' is a custom object"):
        load_keras(_with_config(tmp_path, "seed_cnn.keras", custom))

    def nested(config):
        _layer(config, "Flatten")["class_name"] = "Sequential"

    with pytest.raises(KerasFileError, match="nested models are not supported"):
        load_keras(_with_config(tmp_path, "seed_cnn.keras", nested))


def test_keras2_spellings_are_read():
    with open_keras(FIXTURES / "seed_lstm_keras2.h5") as src:
        layers = src.config["config"]["layers"]
        assert "batch_input_shape" in layers[0]["config"]
        assert layers[2]["config"]["dtype"] == "float32"
        lstm = next(n for n in src.weights if n.startswith("lstm"))
        names = list(src.weights[lstm].attrs["weight_names"])
    model = load_keras(FIXTURES / "seed_lstm_keras2.h5")
    assert model.layers[0].mask_zero
    assert names is not None
    assert all((n.decode() if isinstance(n, bytes) else n).endswith(":0") for n in names)


def _mutations(value):
    yield from (None, "x", -1, True, [None], {"class_name": 3})
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        yield 10**12


@pytest.mark.parametrize(
    "name",
    [
        "bidirectional.keras",
        "functional_add.keras",
        pytest.param("two_inputs_shared.keras", marks=pytest.mark.slow),
        pytest.param("two_branch_text.keras", marks=pytest.mark.slow),
        pytest.param("seed_lstm.keras", marks=pytest.mark.slow),
        pytest.param("bn_dropout.keras", marks=pytest.mark.slow),
        pytest.param("lstm_autoencoder.keras", marks=pytest.mark.slow),
        pytest.param("sequence_blocks.keras", marks=pytest.mark.slow),
    ],
)
def test_any_odd_option_value_gives_a_keras_file_error(name, tmp_path):
    """Every option of every layer replaced by odd values: loads, or one clean error."""
    members = _members(name)
    config = json.loads(members["config.json"])
    for entry in config["config"]["layers"]:
        for key, value in list(entry["config"].items()):
            for odd in _mutations(value):
                entry["config"][key] = odd
                members["config.json"] = json.dumps(config)
                path = _write_zip(tmp_path / name, members)
                _loads_or_one_line_error(path)
            entry["config"][key] = value
    # the entries' and the model's own keys too
    for obj in [config, config["config"], *config["config"]["layers"]]:
        for key, value in list(obj.items()):
            for odd in _mutations(value):
                obj[key] = odd
                members["config.json"] = json.dumps(config)
                _loads_or_one_line_error(_write_zip(tmp_path / name, members))
            obj[key] = value


def _positions(obj, path=()):
    """Every (container, key) below ``obj``, depth first."""
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for key, value in list(items):
        yield obj, key
        if isinstance(value, (dict, list)):
            yield from _positions(value, (*path, key))


@pytest.mark.parametrize(
    "name",
    ["functional_add.keras", pytest.param("two_branch_text.keras", marks=pytest.mark.slow)],
)
def test_any_odd_call_gives_a_keras_file_error(name, tmp_path):
    """Every part of every call (inbound_nodes), input_layers and output_layers replaced by
    odd values, a layer's name among them: loads, or one clean error (never a KeyError)."""
    members = _members(name)
    config = json.loads(members["config.json"])
    cfg = config["config"]
    names = [e["config"]["name"] for e in cfg["layers"]]
    roots = [cfg, *cfg["layers"]]
    for root in roots:
        keys = ["inbound_nodes"] if root is not cfg else ["input_layers", "output_layers"]
        for top in keys:
            for obj, key in [(root, top), *_positions(root[top])]:
                value = obj[key]
                for odd in [*_mutations(value), names[-1], 7, [names[0], 0, 0], {}]:
                    obj[key] = odd
                    members["config.json"] = json.dumps(config)
                    _loads_or_one_line_error(_write_zip(tmp_path / name, members))
                obj[key] = value


def _loads_or_one_line_error(path: Path) -> None:
    try:
        load_keras(path)
    except KerasFileError as e:
        assert "\n" not in str(e)


# ------------------------------------------------------------------ untrusted files


def test_malformed_archives(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"PK\x03\x04 not really a zip" * 10)
    with pytest.raises(KerasFileError, match="neither a .keras archive nor a readable HDF5"):
        load_keras(junk)
    data = (FIXTURES / "seed_cnn.keras").read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(KerasFileError):
        load_keras(cut)
    members = _members("seed_cnn.keras")
    no_weights = {k: v for k, v in members.items() if k != "model.weights.h5"}
    with pytest.raises(KerasFileError, match="lacks model.weights.h5"):
        load_keras(_write_zip(tmp_path / "a.keras", no_weights))
    with pytest.raises(KerasFileError, match="unexpected archive entries"):
        load_keras(_write_zip(tmp_path / "b.keras", {**members, "../evil.py": "x"}))
    bad_h5 = {**members, "model.weights.h5": b"\x89HDF\r\n\x1a\n garbage"}
    with pytest.raises(KerasFileError, match="model.weights.h5 is not a readable HDF5 file"):
        load_keras(_write_zip(tmp_path / "c.keras", bad_h5))
    with pytest.raises(KerasFileError, match="config.json is not valid JSON"):
        load_keras(_write_zip(tmp_path / "d.keras", {**members, "config.json": "{"}))
    with pytest.raises(KerasFileError, match="no such file"):
        load_keras(tmp_path / "missing.keras")


def test_a_config_bomb_is_refused_before_it_is_read(tmp_path):
    members = _members("seed_cnn.keras")
    bomb = {**members, "config.json": " " * (17 << 20)}  # deflates to a few KB
    path = _write_zip(tmp_path / "bomb.keras", bomb)
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    with pytest.raises(KerasFileError, match="config.json expands to"):
        load_keras(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20


def test_deeply_nested_config(tmp_path):
    members = _members("seed_cnn.keras")
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(KerasFileError, match="nests deeper than"):
        load_keras(_write_zip(tmp_path / "deep.keras", {**members, "config.json": deep}))
    config = json.loads(members["config.json"])
    nest: dict = {}
    config["config"]["layers"][1]["config"]["kernel_initializer"] = nest
    for _ in range(60):
        nest["config"] = {}
        nest = nest["config"]
    members["config.json"] = json.dumps(config)
    with pytest.raises(KerasFileError, match="nests deeper than"):
        load_keras(_write_zip(tmp_path / "deep2.keras", members))


def _edit_weights(tmp_path: Path, name: str, edit) -> Path:
    members = _members(name)
    buf = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buf, "r+") as f:
        edit(f)
    members["model.weights.h5"] = buf.getvalue()
    return _write_zip(tmp_path / f"w_{name}", members)


def test_wrong_shape_missing_and_non_finite_weights(tmp_path):
    def wrong_shape(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.zeros((72, 15), np.float32)

    with pytest.raises(
        KerasFileError,
        match=r"layer 'dense' \(Dense\), weight 0 \(/layers/dense/vars/0\) has shape \(72, 15\), ",
    ):
        load_keras(_edit_weights(tmp_path, "seed_cnn.keras", wrong_shape))

    def missing(f):
        del f["layers/lstm_1/cell/vars/2"]

    with pytest.raises(
        KerasFileError, match=r"\(LSTM\): the file has 2 weights, the layer needs 3"
    ):
        load_keras(_edit_weights(tmp_path, "seed_lstm.keras", missing))

    def all_missing(f):
        del f["layers/conv2d"]

    with pytest.raises(KerasFileError, match=r"\(Conv2D\): the file has no weights"):
        load_keras(_edit_weights(tmp_path, "seed_cnn.keras", all_missing))

    def nan(f):
        f["layers/dense/vars/1"][0] = np.nan

    with pytest.raises(KerasFileError, match="NaN or infinite"):
        load_keras(_edit_weights(tmp_path, "seed_cnn.keras", nan))

    def ints(f):
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = np.zeros((16,), np.int32)

    with pytest.raises(KerasFileError, match="dtype int32, expected floats"):
        load_keras(_edit_weights(tmp_path, "seed_cnn.keras", ints))


def test_huge_declared_shapes_are_refused_without_allocating(tmp_path):
    def huge_units(config):
        _layer(config, "Dense")["config"]["units"] = 10**9

    tracemalloc.start()
    with pytest.raises(KerasFileError, match=r"declares [\d,]+ parameters .* GiB limit"):
        load_keras(_with_config(tmp_path, "seed_cnn.keras", huge_units))

    def huge_input(config):
        config["config"]["layers"][0]["config"]["batch_shape"] = [None, 2**30, 2**30, 1]

    with pytest.raises(KerasFileError, match="parameters"):
        load_keras(_with_config(tmp_path, "seed_cnn.keras", huge_input))

    def huge_dataset(f):  # declared, never written: a few bytes on disk
        del f["layers/dense/vars/0"]
        f.create_dataset("layers/dense/vars/0", shape=(10**6, 10**6), dtype="f4", chunks=True)

    with pytest.raises(KerasFileError, match=r"has shape \(1000000, 1000000\), expected"):
        load_keras(_edit_weights(tmp_path, "seed_cnn.keras", huge_dataset))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20


def test_links_out_of_the_file_are_not_followed(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["bias"] = np.zeros((16,), np.float32)

    def external(f):
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = h5py.ExternalLink(str(other), "bias")

    with pytest.raises(KerasFileError, match="is a link to elsewhere; refusing to follow it"):
        load_keras(_edit_weights(tmp_path, "seed_cnn.keras", external))

    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.zeros(16, np.float32).tobytes())

    def external_storage(f):
        del f["layers/dense/vars/1"]
        f.create_dataset("layers/dense/vars/1", shape=(16,), dtype="f4", external=[(raw, 0, 64)])

    with pytest.raises(KerasFileError, match="stored outside the file"):
        load_keras(_edit_weights(tmp_path, "seed_cnn.keras", external_storage))


def test_legacy_h5_missing_weight_is_named(tmp_path):
    path = tmp_path / "m.h5"
    path.write_bytes((FIXTURES / "seed_cnn.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        group = f["model_weights"]
        name = next(n for n in group if n.startswith("dense"))
        layer = group[name]
        weight = layer.attrs["weight_names"][0]
        weight = weight.decode() if isinstance(weight, bytes) else weight
        del layer[weight]
    with pytest.raises(KerasFileError, match=rf"layer '{name}': weight .* is listed but missing"):
        load_keras(path)
    for odd in ("", "/etc/passwd", "../x", "a//b"):
        with h5py.File(path, "r+") as f:
            f["model_weights"][name].attrs["weight_names"] = [odd]
        with pytest.raises(KerasFileError, match="is not a plain path"):
            load_keras(path)


# ------------------------------------------------------------------ no TensorFlow, Keras, ...


def test_conversion_with_the_deep_learning_frameworks_unimportable(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    log = tmp_path / "attempts.txt"
    for name in ("keras", "tensorflow", "torch", "jax"):
        (blocked / f"{name}.py").write_text(
            f"with open({str(log)!r}, 'a') as f:\n    f.write({name!r} + '\\n')\n"
            f"raise ImportError('{name} is blocked in this test')\n"
        )
    out, out2 = tmp_path / "lstm.onnx", tmp_path / "shared.onnx"
    code = (
        "import sys, numpy as np\n"
        "from edgemine.cli import main\n"
        "from edgemine.keras import load_keras\n"
        f"z = np.load({str(FIXTURES / 'seed_lstm.npz')!r})\n"
        f"m = load_keras({str(FIXTURES / 'seed_lstm.keras')!r})\n"
        "assert np.abs(m.predict(z['x']) - z['y5']).max() <= 1e-5\n"
        f"main(['convert', {str(FIXTURES / 'bidirectional.h5')!r}, '-o', {str(out)!r}],"
        " standalone_mode=False)\n"
        f"z = np.load({str(FIXTURES / 'two_branch_text.npz')!r})\n"
        f"m = load_keras({str(FIXTURES / 'two_branch_text.keras')!r})\n"
        "assert np.abs(m.predict(z['x']) - z['y5']).max() <= 1e-5\n"
        f"main(['convert', {str(FIXTURES / 'two_inputs_shared.h5')!r}, '-o', {str(out2)!r}],"
        " standalone_mode=False)\n"
        "bad = sorted(n for n in ('keras', 'tensorflow', 'torch', 'jax') if n in sys.modules)\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not log.exists(), log.read_text()
    ref = _expected("bidirectional")
    assert np.abs(_ort_predict(out, ref["x"]) - ref["y5"]).max() <= TOL
    ref = _expected("two_inputs_shared")
    assert np.abs(_ort_predict(out2, ref["x"]) - ref["y5"]).max() <= TOL


# ------------------------------------------------------------------ docs


@pytest.mark.parametrize(
    "module",
    [
        "edgemine.keras.loader",
        "edgemine.keras.files",
        "edgemine.keras.config",
        "edgemine.keras.weights",
        "edgemine.keras.functional",
    ],
)
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_readme_table_lists_every_converted_layer():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Converting Keras files") :]
    rows = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.M))
    assert set(SPECS) <= rows
