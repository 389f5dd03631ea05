"""Deployable bundles: run.py as a subprocess must agree with onnxruntime, refuse bad inputs
with one line, and (slow) work in a fresh venv holding only its requirements.txt."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from deploy_toy_models import make_cnn, make_lstm, toy_images, toy_tokens, toy_word_index

from edgemine.bundle import BUNDLE_FILES, write_bundle

RUN_PY = Path(__file__).resolve().parent.parent / "edgemine" / "bundle_template" / "run.py"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _run(bundle, *args, stdin=None, python=sys.executable):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        [str(python), str(Path(bundle) / "run.py"), *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=str(bundle),
    )


def _assert_refused(res, *words):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def png_bytes(
    img: np.ndarray,
    color: int | None = None,
    filters=(0, 1, 2, 3, 4),
    depth: int = 8,
    interlace: int = 0,
) -> bytes:
    """A PNG written by hand, cycling through the five row filters."""
    img = np.asarray(img, dtype=np.uint8)
    if img.ndim == 2:
        img = img[:, :, None]
    h, w, ch = img.shape
    if color is None:
        color = {1: 0, 2: 4, 3: 2, 4: 6}[ch]
    bpp = ch
    raw = bytearray()
    prev = [0] * (w * bpp)
    for y in range(h):
        line = img[y].reshape(-1).tolist()
        f = filters[y % len(filters)]
        out = []
        for i, v in enumerate(line):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) >> 1, _paeth(a, b, c)][f]
            out.append((v - pred) & 0xFF)
        raw.append(f)
        raw.extend(out)
        prev = line

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def _load_runner():
    spec = importlib.util.spec_from_file_location("bundle_run", RUN_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("bundle")
    cnn = make_cnn(d / "cnn.onnx")
    lstm = make_lstm(d / "lstm.onnx")
    return {
        "dir": d,
        "cnn": cnn,
        "lstm": lstm,
        "cnn_bundle": write_bundle(cnn, d / "cnn_rpi", target="rpi"),
        "lstm_bundle": write_bundle(
            lstm,
            d / "lstm_jetson",
            target="jetson",
            preprocessing={"word_index": toy_word_index(1000)},
        ),
    }


# --------------------------------------------------------------------------------------------
# the folder
# --------------------------------------------------------------------------------------------


def test_bundle_files(work):
    b = work["cnn_bundle"]
    assert sorted(p.name for p in b.iterdir()) == sorted(BUNDLE_FILES)
    spec = json.loads((b / "preprocessing.json").read_text())
    assert spec["kind"] == "image" and (spec["height"], spec["width"], spec["channels"]) == (
        28,
        28,
        1,
    )
    assert spec["input"] == {"name": "input", "dtype": "float32", "shape": [None, 28, 28, 1]}
    assert spec["bundle"]["target"] == "rpi" and spec["bundle"]["quantization"] == "fp32"
    assert json.loads((b / "labels.json").read_text()) == [str(i) for i in range(10)]
    assert (b / "run.py").read_text() == RUN_PY.read_text()
    req = (b / "requirements.txt").read_text()
    assert "\nnumpy>=" in req and "\nonnxruntime>=" in req
    readme = (b / "README.md").read_text()
    assert "aarch64" in readme and "requirements.txt" in readme and "run.py" in readme


def test_jetson_bundle(work):
    b = work["lstm_bundle"]
    req = (b / "requirements.txt").read_text()
    active = [line for line in req.splitlines() if line and not line.startswith("#")]
    assert active == ["numpy>=1.19,<2"]
    assert "Jetson Zoo" in req and "not come from PyPI" in req.replace("NOT", "not")
    readme = (b / "README.md").read_text()
    assert "TensorrtExecutionProvider, CUDAExecutionProvider" in readme
    assert "JetPack" in readme and "TensorRT" in readme
    spec = json.loads((b / "preprocessing.json").read_text())
    # the vocabulary is cut to num_words, like Keras's Tokenizer(num_words=1000)
    assert len(spec["word_index"]) == 999 and max(spec["word_index"].values()) == 999
    assert spec["maxlen"] == 20 and spec["padding"] == "pre"
    assert json.loads((b / "labels.json").read_text()) == ["negative", "neutral", "positive"]


# --------------------------------------------------------------------------------------------
# run.py on the host
# --------------------------------------------------------------------------------------------


def test_run_py_npy_matches_onnxruntime(work, tmp_path):
    x = toy_images(40)
    np.save(tmp_path / "x.npy", x)
    res = _run(work["cnn_bundle"], tmp_path / "x.npy", "--json", "--output", tmp_path / "out.npy")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["provider"] == "CPUExecutionProvider"
    ref = _ort(work["cnn"], x)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), ref, atol=1e-6)
    assert [p["index"] for p in doc["predictions"]] == ref.argmax(1).tolist()
    assert doc["predictions"][0]["probability"] == pytest.approx(float(ref[0].max()), abs=1e-6)
    # raw uint8 images (n, 28, 28) are scaled by the bundle
    raw = (x[:, :, :, 0] * 255).round().astype(np.uint8)
    np.save(tmp_path / "raw.npy", raw)
    res = _run(work["cnn_bundle"], tmp_path / "raw.npy")
    assert res.returncode == 0, res.stderr
    got = [line.split("\t")[1] for line in res.stdout.strip().splitlines()]
    assert got == [str(i) for i in _ort(work["cnn"], raw[..., None] / np.float32(255)).argmax(1)]
    assert "CPUExecutionProvider" in res.stderr  # says which provider it used


def test_cli_and_bundle_prepare_image_files_identically(work, tmp_path):
    """One preparation module: PNGs from an independent encoder (this file's, zlib only) and
    JPEGs from Pillow, grey and colour, into a grey model give the bundle and `edgemine
    predict` the same inputs, so onnxruntime gives both the same outputs, bit for bit."""
    from click.testing import CliRunner
    from PIL import Image

    from edgemine.cli.export import predict_cmd

    rng = np.random.default_rng(8)
    files = []
    for i, shape in enumerate([(28, 28), (28, 28, 3), (28, 28, 4), (28, 28, 2)]):
        files.append(tmp_path / f"png{i}.png")
        files[-1].write_bytes(png_bytes(rng.integers(0, 256, size=shape, dtype=np.uint8)))
    for mode, shape in (("L", (28, 28)), ("RGB", (28, 28, 3))):
        files.append(tmp_path / f"jpeg_{mode}.jpg")
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        Image.fromarray(pixels, mode).save(files[-1], quality=90)
    res = _run(work["cnn_bundle"], *files, "--output", tmp_path / "bundle.npy")
    assert res.returncode == 0, res.stderr
    cli = CliRunner().invoke(
        predict_cmd, [str(work["cnn"]), *map(str, files), "-o", str(tmp_path / "cli.npy")]
    )
    assert cli.exit_code == 0, cli.output
    np.testing.assert_array_equal(np.load(tmp_path / "bundle.npy"), np.load(tmp_path / "cli.npy"))
    grey = np.asarray(Image.open(files[1]).convert("L"), np.float32)[None, :, :, None] / 255
    np.testing.assert_allclose(
        np.load(tmp_path / "cli.npy")[1:2], _ort(work["cnn"], grey), atol=1e-6
    )


def test_run_py_png_gray_and_rgb(work, tmp_path):
    x = toy_images(2)
    gray = (x[0, :, :, 0] * 255).round().astype(np.uint8)
    (tmp_path / "gray.png").write_bytes(png_bytes(gray))
    (tmp_path / "rgb.png").write_bytes(png_bytes(np.repeat(gray[:, :, None], 3, axis=2)))
    (tmp_path / "rgba.png").write_bytes(
        png_bytes(
            np.concatenate(
                [np.repeat(gray[:, :, None], 3, 2), np.full((28, 28, 1), 255, np.uint8)], 2
            )
        )
    )
    res = _run(
        work["cnn_bundle"],
        tmp_path / "gray.png",
        tmp_path / "rgb.png",
        tmp_path / "rgba.png",
        "--json",
        "--output",
        tmp_path / "o.npy",
    )
    assert res.returncode == 0, res.stderr
    ref = _ort(work["cnn"], (gray[None, :, :, None] / np.float32(255)).astype(np.float32))
    out = np.load(tmp_path / "o.npy")
    np.testing.assert_allclose(out, np.repeat(ref, 3, axis=0), atol=1e-6)


def test_run_py_text_matches_keras_tokenizing(work, tmp_path):
    texts = ["Word1 word2, WORD3! unknown word999", "word5 word1000 word7"]
    # by hand: lower-case, punctuation to spaces, unknown words and index >= num_words dropped,
    # padded at the front to maxlen=20
    seqs = [[1, 2, 3, 999], [5, 7]]
    x = np.zeros((2, 20), np.int64)
    for row, s in zip(x, seqs):
        row[20 - len(s) :] = s
    ref = _ort(work["lstm"], x)
    res = _run(
        work["lstm_bundle"],
        "--text",
        texts[0],
        "--text",
        texts[1],
        "--json",
        "--output",
        tmp_path / "t.npy",
    )
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(np.load(tmp_path / "t.npy"), ref, atol=1e-6)
    labels = ["negative", "neutral", "positive"]
    doc = json.loads(res.stdout)
    assert [p["class"] for p in doc["predictions"]] == [labels[i] for i in ref.argmax(1)]
    # the same texts as lines of stdin and of a file
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    for args, stdin in (((tmp_path / "t.txt",), None), (("-",), "\n".join(texts))):
        res = _run(work["lstm_bundle"], *args, "--output", tmp_path / "s.npy", stdin=stdin)
        assert res.returncode == 0, res.stderr
        np.testing.assert_allclose(np.load(tmp_path / "s.npy"), ref, atol=1e-6)
        assert len(res.stdout.strip().splitlines()) == 2
    # token ids in a .npy
    tok = toy_tokens(10)
    np.save(tmp_path / "tok.npy", tok)
    res = _run(work["lstm_bundle"], tmp_path / "tok.npy", "--output", tmp_path / "k.npy")
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(np.load(tmp_path / "k.npy"), _ort(work["lstm"], tok), atol=1e-6)


def test_run_py_bench(work):
    res = _run(work["cnn_bundle"], "--bench", "--repeats", "5", "--json")
    assert res.returncode == 0, res.stderr
    b = json.loads(res.stdout)["bench"]
    assert b["latency_ms_batch1_median"] > 0 and b["throughput_per_s_batch64"] > 0
    res = _run(work["cnn_bundle"], "--bench", "--repeats", "5")
    assert "batch 1 latency median" in res.stdout and "samples/s" in res.stdout


# --------------------------------------------------------------------------------------------
# refusals: one line, exit 2, no traceback
# --------------------------------------------------------------------------------------------


def test_refuses_wrong_size_png(work, tmp_path):
    (tmp_path / "big.png").write_bytes(png_bytes(np.zeros((32, 30), np.uint8)))
    _assert_refused(_run(work["cnn_bundle"], tmp_path / "big.png"), "30x32", "28x28")


def test_refuses_text_longer_than_maxlen(work):
    long = " ".join(f"word{i % 50 + 1}" for i in range(25))
    _assert_refused(_run(work["lstm_bundle"], "--text", long), "25 tokens", "maxlen=20")
    res = _run(work["lstm_bundle"], "--text", long, "--truncate")
    assert res.returncode == 0, res.stderr


def test_refuses_missing_and_corrupt_model(work, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(work["cnn_bundle"], b)
    (b / "model.onnx").unlink()
    _assert_refused(_run(b, "--bench"), "model file not found")
    (b / "model.onnx").write_bytes(b"\x08\x07garbage, not protobuf" * 20)
    _assert_refused(_run(b, "--bench"), "cannot load model.onnx")
    shutil.copyfile(work["lstm"], b / "model.onnx")  # a model that is not the bundle's
    _assert_refused(_run(b, "--bench"), "does not belong to this bundle")


def _bundle_runner(bundle):
    """The bundle's run.py imported in this process (its HERE is the bundle folder)."""
    spec = importlib.util.spec_from_file_location(
        f"run_{Path(bundle).name}", Path(bundle) / "run.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    "which, make, message",
    [
        ("cnn_bundle", None, "not found"),
        ("cnn_bundle", lambda p: p.with_suffix(".txt").write_text("hello\n"), "not text"),
        (
            "cnn_bundle",
            lambda p: np.save(p.with_suffix(".npy"), np.zeros((3, 10, 10), np.float32)),
            "(3, 10, 10)",
        ),
        (
            "lstm_bundle",
            lambda p: np.save(p.with_suffix(".npy"), np.full((1, 20), 5000)),
            "outside",
        ),
        (
            "cnn_bundle",
            lambda p: p.with_suffix(".png").write_bytes(b"GIF89a...."),
            "in.png is not a readable image",
        ),
        (
            "cnn_bundle",
            lambda p: np.save(p.with_suffix(".npy"), np.full((1, 28, 28, 1), np.nan, np.float32)),
            "NaN",
        ),
        (
            "lstm_bundle",
            lambda p: p.with_suffix(".png").write_bytes(png_bytes(np.zeros((2, 2)))),
            "not images",
        ),
    ],
)
def test_refuses_other_bad_inputs(work, tmp_path, which, make, message):
    runner = _bundle_runner(work[which])
    base = tmp_path / "in"
    if make is not None:
        make(base)
    files = [str(p) for p in tmp_path.iterdir()] or [str(base) + ".png"]
    with pytest.raises((runner.BundleError, runner.inputs.InputError), match=re.escape(message)):
        runner.main(files)
    with pytest.raises(runner.BundleError, match="no input"):
        runner.main([])


# --------------------------------------------------------------------------------------------
# write_bundle and the CLI
# --------------------------------------------------------------------------------------------


def test_write_bundle_errors(work, tmp_path):
    with pytest.raises(ValueError, match="vocabulary"):
        write_bundle(work["lstm"], tmp_path / "a", target="rpi")
    with pytest.raises(ValueError, match="labels"):
        write_bundle(work["cnn"], tmp_path / "b", labels=["a", "b"])
    with pytest.raises(ValueError, match="target"):
        write_bundle(work["cnn"], tmp_path / "c", target="esp32")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a valid ONNX"):
        write_bundle(bad, tmp_path / "d")


def test_labels_file(work, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    b = write_bundle(work["cnn"], tmp_path / "lab", target="generic", labels=labels)
    assert json.loads((b / "labels.json").read_text())[3] == "digit 3"


def test_cli_bundle_int8(work, tmp_path):
    from edgemine.cli.deploy import bundle

    calib = tmp_path / "calib.npz"
    np.savez(calib, x=toy_images(64))
    res = CliRunner().invoke(
        bundle,
        [
            str(work["cnn"]),
            "-o",
            str(tmp_path / "q"),
            "--target",
            "rpi",
            "--int8",
            "--calibration",
            str(calib),
        ],
    )
    assert res.exit_code == 0, res.output
    spec = json.loads((tmp_path / "q" / "preprocessing.json").read_text())
    assert spec["bundle"]["quantization"] == "int8-static"
    x = toy_images(20)
    np.save(tmp_path / "x.npy", x)
    run = _run(tmp_path / "q", tmp_path / "x.npy", "--output", tmp_path / "o.npy")
    assert run.returncode == 0, run.stderr
    assert np.abs(np.load(tmp_path / "o.npy") - _ort(work["cnn"], x)).max() < 0.05

    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps(toy_word_index(1000)))
    res = CliRunner().invoke(
        bundle,
        [str(work["lstm"]), "-o", str(tmp_path / "t"), "--target", "jetson", "--vocab", str(vocab)],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(bundle, [str(work["lstm"]), "-o", str(tmp_path / "u")])
    assert res.exit_code == 1 and "vocabulary" in res.output


# --------------------------------------------------------------------------------------------
# slow: a fresh venv with nothing but the bundle's requirements.txt
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_bundle_in_a_fresh_venv(work, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "-r", str(work["cnn_bundle"] / "requirements.txt")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    listed = subprocess.run(
        [str(py), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert "edgemine" not in names and "numba" not in names and "onnx" not in names
    x = toy_images(16)
    np.save(tmp_path / "x.npy", x)
    res = _run(
        work["cnn_bundle"], tmp_path / "x.npy", "--json", "--output", tmp_path / "o.npy", python=py
    )
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), _ort(work["cnn"], x), atol=1e-5)


def test_array_model_bundle_refuses_nan_and_wrong_dtype(tmp_path):
    from edgemine.layers import Dense
    from edgemine.models import Sequential
    from edgemine.onnx import export

    path = export(Sequential([Dense(2, input_shape=(3,))]), tmp_path / "dense.onnx")
    b = write_bundle(path, tmp_path / "b", target="generic")
    np.save(tmp_path / "ok.npy", np.ones((2, 3), np.float32))
    np.save(tmp_path / "nan.npy", np.array([[1, np.nan, 0]], np.float32))
    np.save(tmp_path / "text.npy", np.array([["a", "b", "c"]]))
    res = _run(b, tmp_path / "ok.npy", "--output", tmp_path / "out.npy")
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(
        np.load(tmp_path / "out.npy"), _ort(path, np.ones((2, 3), np.float32))
    )
    _assert_refused(_run(b, tmp_path / "nan.npy"), "nan.npy contains NaN")
    _assert_refused(_run(b, tmp_path / "text.npy"), "dtype <U1")
