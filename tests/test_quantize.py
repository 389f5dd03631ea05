"""int8 (static QDQ, dynamic) and fp16 versions of the tiny test models, and the fp32 report."""

from __future__ import annotations

import sys
import types

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from deploy_toy_models import make_cnn, make_lstm, toy_images, toy_tokens

from edgemine import quantize as q


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _run_unfused(path, x):
    """The QDQ graph as written: float ops between Quantize/DequantizeLinear, no int8 kernels.

    Every CPU's integer kernels must give these answers; a kernel that saturates does not."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _ops(path):
    return {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("quantize")
    return {
        "dir": d,
        "cnn": make_cnn(d / "cnn.onnx"),
        "lstm": make_lstm(d / "lstm.onnx"),
        "images": toy_images(200),
        "tokens": toy_tokens(200),
    }


@pytest.fixture(scope="module")
def cnn_int8(models):
    out = q.quantize_int8(
        models["cnn"], models["dir"] / "cnn_int8.onnx", calibration=models["images"][:128]
    )
    return out


def test_static_int8_cnn_is_valid_smaller_and_close(models, cnn_int8):
    onnx.checker.check_model(onnx.load(str(cnn_int8)), full_check=True)
    assert cnn_int8.stat().st_size < 0.5 * models["cnn"].stat().st_size
    ops = _ops(cnn_int8)
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Softmax"} <= ops
    x = models["images"]
    ref, got = _run(models["cnn"], x), _run(cnn_int8, x)
    assert np.abs(ref - got).max() < 0.05
    assert np.mean(ref.argmax(1) == got.argmax(1)) > 0.9
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)  # the softmax stays float


@pytest.mark.parametrize("symmetric", [False, True])
def test_static_int8_gives_the_same_answers_on_every_cpu(models, symmetric):
    # U8S8 without reduce_range saturated on x86 without VNNI: 0.073 from the QDQ graph here
    out = q.quantize_int8(
        models["cnn"],
        models["dir"] / f"cnn_int8_sym{symmetric}.onnx",
        calibration=models["images"][:128],
        symmetric=symmetric,
    )
    x = models["images"]
    assert np.abs(_run(out, x) - _run_unfused(out, x)).max() < 1e-3


def test_metadata_survives_quantization(models, cnn_int8):
    before, after = q.read_metadata(models["cnn"]), q.read_metadata(cnn_int8)
    for key in ("edgemine_version", "layers", "class_names", "preprocessing"):
        assert after[key] == before[key]
    assert before["quantization"] is None
    assert after["quantization"] == "int8-static"


def test_dynamic_int8_lstm_is_default_for_recurrent(models):
    out = q.quantize_int8(models["lstm"], models["dir"] / "lstm_int8.onnx")  # auto: dynamic
    onnx.checker.check_model(onnx.load(str(out)))
    assert "DynamicQuantizeLSTM" in _ops(out)
    assert out.stat().st_size < 0.5 * models["lstm"].stat().st_size
    x = models["tokens"]
    assert np.abs(_run(models["lstm"], x) - _run(out, x)).max() < 0.05
    assert q.read_metadata(out)["quantization"] == "int8-dynamic"


def test_dynamic_int8_on_a_cnn_when_asked(models):
    out = q.quantize_int8(models["cnn"], models["dir"] / "cnn_dyn.onnx", method="dynamic")
    assert "QuantizeLinear" not in _ops(out)
    x = models["images"][:50]
    assert np.abs(_run(models["cnn"], x) - _run(out, x)).max() < 0.05


@pytest.mark.parametrize("name, data", [("cnn", "images"), ("lstm", "tokens")])
def test_fp16_close_and_float32_interface(models, name, data):
    out = q.convert_fp16(models[name], models["dir"] / f"{name}_fp16.onnx")
    proto = onnx.load(str(out))
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    assert out.stat().st_size < 0.6 * models[name].stat().st_size
    x = models[data]
    got = _run(out, x)
    assert got.dtype == np.float32
    assert np.abs(_run(models[name], x) - got).max() < 1e-2
    assert q.read_metadata(out)["quantization"] == "fp16"


def test_fp16_without_onnxruntime_transformers(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime.transformers.float16", None)  # ImportError
    out = q.convert_fp16(models["cnn"], models["dir"] / "cnn_fp16_hand.onnx")
    onnx.checker.check_model(onnx.load(str(out)))
    x = models["images"][:50]
    assert np.abs(_run(models["cnn"], x) - _run(out, x)).max() < 1e-2


def test_report_fields_and_format(models, cnn_int8):
    x = models["images"][:100]
    y = np.arange(100) % 10
    r = q.compare_models(models["cnn"], cnn_int8, x, y, repeats=5)
    for role in ("reference", "candidate"):
        for key in (
            "path",
            "precision",
            "size_bytes",
            "accuracy",
            "latency_ms_batch1",
            "latency_ms_batch64",
        ):
            assert key in r[role]
        assert 0.0 <= r[role]["accuracy"] <= 1.0
        assert r[role]["latency_ms_batch1"] > 0 and r[role]["latency_ms_batch64"] > 0
    assert r["reference"]["precision"] == "fp32"
    assert r["candidate"]["precision"] == "int8-static"
    assert 0 < r["size_ratio"] < 0.5
    assert 0 <= r["max_abs_diff"] < 0.05 and r["samples"] == 100
    text = q.format_report(r)
    for word in ("file size", "accuracy", "latency, batch 1", "latency, batch 64", "max |diff|"):
        assert word in text
    # one-hot labels work too; no labels: no accuracy line
    r2 = q.compare_models(models["cnn"], cnn_int8, x, np.eye(10)[y], repeats=3)
    assert r2["reference"]["accuracy"] == r["reference"]["accuracy"]
    assert "accuracy" not in q.format_report(
        q.compare_models(models["cnn"], cnn_int8, x, repeats=3)
    )


def test_raw_uint8_images_are_scaled_like_the_model_expects(models):
    spec = q.model_spec(models["cnn"])
    raw = (models["images"][:5, :, :, 0] * 255).round().astype(np.uint8)
    x = q.prepare_inputs(raw, spec, q.read_metadata(models["cnn"])["preprocessing"])
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x, models["images"][:5], atol=1 / 255)
    with pytest.raises(ValueError, match="28, 28, 1"):
        q.prepare_inputs(np.zeros((2, 32, 32, 1), np.float32), spec)


def _fake_datasets(monkeypatch):
    """A stand-in edgemine.datasets with label-sorted data, like the real MNIST subset."""
    images = np.repeat(np.arange(10, dtype=np.uint8)[:, None, None] * 25, 400, axis=0)
    images = np.broadcast_to(images, (4000, 28, 28)).copy()
    labels = np.repeat(np.arange(10), 400)
    mnist = types.SimpleNamespace(load_data=lambda: ((images, labels), (images[::4], labels[::4])))
    calls = {}

    def tweets_load(num_words=10000, maxlen=100):
        calls["tweets"] = (num_words, maxlen)
        x = np.random.default_rng(0).integers(0, num_words, (500, maxlen)).astype(np.int32)
        return (x, np.zeros(500, int)), (x[:100], np.zeros(100, int))

    tweets = types.SimpleNamespace(
        load_data=tweets_load,
        get_word_index=lambda num_words=None: {f"word{i}": i for i in range(1, 3000)},
    )
    pkg = types.ModuleType("edgemine.datasets")
    pkg.mnist, pkg.tweets = mnist, tweets
    monkeypatch.setitem(sys.modules, "edgemine.datasets", pkg)
    monkeypatch.setitem(sys.modules, "edgemine.datasets.mnist", mnist)
    monkeypatch.setitem(sys.modules, "edgemine.datasets.tweets", tweets)
    return calls


def test_default_calibration_comes_from_the_matching_dataset(models, monkeypatch):
    calls = _fake_datasets(monkeypatch)
    x = q.default_calibration(models["cnn"], n=100)
    assert x.shape == (100, 28, 28, 1) and x.dtype == np.float32
    assert x.max() <= 1.0
    # spread over the label-sorted split: every class is in the calibration set
    assert len(np.unique(x[:, 0, 0, 0])) == 10
    t = q.default_calibration(models["lstm"], n=50)
    assert t.shape == (50, 20) and t.dtype == np.int64
    assert calls["tweets"] == (1000, 20)  # num_words and maxlen from the metadata
    out = q.quantize_int8(models["cnn"], models["dir"] / "cnn_default_calib.onnx", samples=64)
    assert "QuantizeLinear" in _ops(out)


def test_bad_arguments(models, tmp_path):
    with pytest.raises(ValueError, match="method"):
        q.quantize_int8(models["cnn"], tmp_path / "x.onnx", method="fancy")
    with pytest.raises(ValueError, match="empty"):
        q.quantize_int8(
            models["cnn"],
            tmp_path / "x.onnx",
            method="static",
            calibration=np.zeros((0, 28, 28, 1), np.float32),
        )
    with pytest.raises(FileNotFoundError):
        q.quantize_int8(tmp_path / "missing.onnx", tmp_path / "x.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="not a readable ONNX"):
        q.convert_fp16(bad, tmp_path / "y.onnx")


def test_load_npz_prefers_the_asked_split(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(
        p, x_train=np.ones((3, 2)), y_train=np.ones(3), x_test=np.zeros((2, 2)), y_test=np.zeros(2)
    )
    assert q.load_npz(p, "train")[0].shape == (3, 2)
    assert q.load_npz(p, "test")[0].shape == (2, 2)
    p2 = tmp_path / "e.npz"
    np.savez(p2, x=np.ones((4, 2)))
    x, y = q.load_npz(p2, "test")
    assert x.shape == (4, 2) and y is None
    p3 = tmp_path / "f.npz"
    np.savez(p3, images=np.ones(2))
    with pytest.raises(ValueError, match="expected 'x'"):
        q.load_npz(p3)


def test_cli_quantize(models, tmp_path):
    from edgemine.cli.deploy import quantize

    data = tmp_path / "data.npz"
    np.savez(
        data,
        x_train=models["images"][:64],
        x_test=models["images"][64:164],
        y_test=np.arange(100) % 10,
    )
    runner = CliRunner()
    out = tmp_path / "q.onnx"
    res = runner.invoke(
        quantize,
        [
            str(models["cnn"]),
            "-o",
            str(out),
            "--int8",
            "--calibration",
            str(data),
            "--eval",
            str(data),
        ],
    )
    assert res.exit_code == 0, res.output
    assert out.is_file() and "accuracy" in res.output and "int8-static" in res.output
    res = runner.invoke(
        quantize, [str(models["lstm"]), "-o", str(tmp_path / "h.onnx"), "--fp16", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert '"max_abs_diff"' in res.output
    res = runner.invoke(quantize, [str(models["cnn"]), "-o", str(out), "--int8", "--fp16"])
    assert res.exit_code != 0 and "exactly one" in res.output
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    res = runner.invoke(quantize, [str(bad), "-o", str(out), "--fp16"])
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "Error:" in res.output
