"""``edgemine export / predict / bench``: end to end through click's CliRunner and as a
subprocess; bad files, wrong shapes and unknown options give one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from deploy_toy_models import make_lstm, toy_word_index
from PIL import Image

from edgemine.cli import main
from edgemine.layers import Conv2D, Dense, Flatten, MaxPooling2D
from edgemine.models import Sequential
from edgemine.preprocessing.inputs import InputError
from edgemine.preprocessing.inputs import read_image as read_png
from edgemine.runtime import Session

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ PNG writer


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter_row(kind: int, row: bytes, prev: bytes, bpp: int) -> bytes:
    out = bytearray()
    for i, v in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind]
        out.append((v - pred) & 255)
    return bytes([kind]) + bytes(out)


def write_png(
    path: Path,
    rows: list[bytes],
    width: int,
    height: int,
    color: int,
    depth: int,
    palette: bytes | None = None,
    interlace: int = 0,
    bad_crc: bool = False,
) -> Path:
    """A PNG with every row filter used in turn (none, sub, up, average, paeth)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    bpp = max(1, channels * depth // 8)
    raw, prev = b"", bytes(len(rows[0]))
    for y, row in enumerate(rows):
        raw += _filter_row(y % 5, row, prev, bpp)
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc ^ bad_crc)

    data = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    )
    if palette is not None:
        data += chunk(b"PLTE", palette)
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def grey_png(path: Path, img: np.ndarray) -> Path:
    h, w = img.shape
    return write_png(path, [bytes(r) for r in img.astype(np.uint8)], w, h, 0, 8)


# -------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = Sequential(
        [
            Conv2D(4, 3, activation="relu", input_shape=(8, 8, 1)),
            MaxPooling2D(),
            Flatten(),
            Dense(3, activation="softmax"),
        ]
    )
    model.class_names = ["cat", "dog", "emu"]
    model.preprocessing = {
        "kind": "image",
        "height": 8,
        "width": 8,
        "channels": 1,
        "scale": 1 / 255,
    }
    model.save(d / "cnn.edgemine")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 8, 8), dtype=np.uint8)
    np.save(d / "images.npy", images)
    np.savez(d / "images.npz", x=images)
    np.save(d / "bad_shape.npy", np.zeros((2, 7, 7), np.float32))
    (d / "images.csv").write_text(
        ",".join(f"p{i}" for i in range(64))
        + "\n"
        + "\n".join(",".join(str(v) for v in img.ravel()) for img in images)
        + "\n"
    )
    grey_png(d / "digit.png", images[0])
    (d / "notes.txt").write_text("hello world\n")
    (d / "corrupt.edgemine").write_bytes(b"PK\x03\x04 not really a zip")
    return {"dir": d, "model": model, "images": images}


def run(*args: str) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, match: str) -> None:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert match in lines[0], lines[0]
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------------- export


def test_export_and_verify(files):
    d = files["dir"]
    result = run("export", d / "cnn.edgemine", "-o", d / "cnn.onnx")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "max |onnxruntime - engine|" in result.output
    proto = onnx.load(str(d / "cnn.onnx"))
    assert proto.opset_import[0].version == 17
    result = run("export", d / "cnn.edgemine", "-o", d / "cnn13.onnx", "--opset", "13", "--nchw")
    assert result.exit_code == 0, result.output
    sess = Session(d / "cnn13.onnx")
    assert sess.input_shape == (None, 1, 8, 8) and sess.preprocessing["layout"] == "NCHW"
    result = run("export", d / "cnn.edgemine", "--no-verify")  # default output name
    assert result.exit_code == 0 and (d / "cnn.onnx").is_file()


def test_export_errors(files):
    d = files["dir"]
    one_line_error(run("export", d / "cnn.edgemine", "--opset", "99"), "opset 99 is not supported")
    one_line_error(run("export", d / "corrupt.edgemine"), "corrupt.edgemine")
    one_line_error(run("export", d / "images.npy"), "export takes a .edgemine model")
    one_line_error(run("export", d / "cnn.edgemine", "-o", d / "x.txt"), "must end in .onnx")
    one_line_error(run("export", d / "cnn.edgemine", "--frobnicate"), "No such option")
    one_line_error(run("export", d / "missing.edgemine"), "does not exist")
    one_line_error(run("export", d / "cnn.edgemine", "--opset", "x"), "not a valid integer")


# -------------------------------------------------------------------------------- predict


def test_predict_every_input_format(files):
    d, model, images = files["dir"], files["model"], files["images"]
    run("export", d / "cnn.edgemine", "-o", d / "cnn.onnx")
    want = model.predict(images[..., None].astype(np.float32) / 255)
    labels = [["cat", "dog", "emu"][k] for k in want.argmax(1)]
    for model_file in ("cnn.edgemine", "cnn.onnx"):
        for inp in ("images.npy", "images.npz", "images.csv"):
            result = run("predict", d / model_file, d / inp)
            assert result.exit_code == 0, result.output
            lines = result.output.strip().splitlines()
            assert len(lines) == 5
            for line, label, p in zip(lines, labels, want.max(1)):
                name, got_label, got_p = line.split()
                assert got_label == label and abs(float(got_p) - p) < 1e-4
        result = run("predict", d / model_file, d / "digit.png")
        assert result.exit_code == 0, result.output
        assert result.output.split()[:2] == ["digit.png", labels[0]]


def test_predict_outputs(files):
    d, model, images = files["dir"], files["model"], files["images"]
    want = model.predict(images[..., None].astype(np.float32) / 255)
    out = d / "out"
    assert run("predict", d / "cnn.edgemine", d / "images.npy", "-o", out / "p.npy").exit_code == 0
    np.testing.assert_allclose(np.load(out / "p.npy"), want, atol=1e-6)
    assert run("predict", d / "cnn.edgemine", d / "images.npy", "-o", out / "p.json").exit_code == 0
    data = json.loads((out / "p.json").read_text())
    assert data[2]["input"] == "images.npy[2]" and data[2]["class"] == int(want[2].argmax())
    assert np.allclose(data[2]["probabilities"], want[2], atol=1e-6)
    assert run("predict", d / "cnn.edgemine", d / "images.npy", "-o", out / "p.csv").exit_code == 0
    rows = (out / "p.csv").read_text().splitlines()
    assert rows[0] == "input,class,label,probability,p_cat,p_dog,p_emu" and len(rows) == 6
    one_line_error(
        run("predict", d / "cnn.edgemine", d / "images.npy", "-o", out / "p.xlsx"),
        "must be .csv, .npy or .json",
    )


def test_predict_errors(files):
    d = files["dir"]
    one_line_error(
        run("predict", d / "cnn.edgemine", d / "bad_shape.npy"),
        "bad_shape.npy holds floats of shape (2, 7, 7); the model takes (n, 8, 8, 1)",
    )
    one_line_error(run("predict", d / "cnn.edgemine", d / "notes.txt"), "not text")
    one_line_error(run("predict", d / "images.npy", d / "images.npy"), "must be a .edgemine or")
    one_line_error(run("predict", d / "cnn.edgemine", d / "corrupt.edgemine"), "not text")
    one_line_error(run("predict", d / "cnn.edgemine"), "Missing argument")
    one_line_error(
        run("predict", d / "cnn.edgemine", d / "images.npy", "--top", "3"), "No such option"
    )
    big = d / "big.png"
    grey_png(big, np.zeros((9, 8), np.uint8))
    one_line_error(
        run("predict", d / "cnn.edgemine", big), "big.png is 8x9 pixels; the model takes 8x8"
    )
    junk = d / "junk.npy"
    junk.write_bytes(b"\x93NUMPY garbage")
    one_line_error(run("predict", d / "cnn.edgemine", junk), "not a readable .npy file")
    csv = d / "words.csv"
    csv.write_text("1,2\n3,oops\n")
    one_line_error(run("predict", d / "cnn.edgemine", csv), "line 2: not numeric")


def test_predict_text_model(files, tmp_path):
    path = make_lstm(tmp_path / "text.onnx", vocab=30, maxlen=5)
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    pre = json.loads(meta["preprocessing"])
    pre["word_index"] = toy_word_index(40)
    pre["num_words"] = 30
    onnx.helper.set_model_props(proto, {**meta, "preprocessing": json.dumps(pre)})
    with_vocab = tmp_path / "with_vocab.onnx"
    onnx.save(proto, str(with_vocab))
    texts = tmp_path / "texts.txt"
    texts.write_text("Word1 word2, WORD3!\n\nword35 word7 word8 word9 word10 word11 word12\n")
    result = run("predict", with_vocab, texts, "-o", tmp_path / "t.json")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "t.json").read_text())
    assert [r["input"] for r in data] == ["texts.txt:1", "texts.txt:3"]
    sess = Session(with_vocab)
    # 'word35' >= num_words is dropped; the long line keeps its last 5 words (truncating='pre')
    want = sess.predict(np.array([[0, 0, 1, 2, 3], [8, 9, 10, 11, 12]]))
    np.testing.assert_allclose([r["probabilities"] for r in data], want, atol=1e-6)
    assert data[0]["label"] in ("negative", "neutral", "positive")
    one_line_error(run("predict", path, texts), "has no vocabulary (preprocessing word_index)")
    np.save(tmp_path / "ids.npy", np.array([[0, 0, 1, 2, 3]], np.int32))
    result = run("predict", path, tmp_path / "ids.npy")
    assert result.exit_code == 0, result.output
    np.save(tmp_path / "bad_ids.npy", np.array([[0, 0, 1, 2, 99]]))
    one_line_error(run("predict", path, tmp_path / "bad_ids.npy"), "token id 99")


def _onnx_file(files) -> Path:
    """cnn.onnx, exported here when the test that makes it ran in another xdist worker."""
    path = files["dir"] / "cnn.onnx"
    if not path.is_file():
        run("export", files["dir"] / "cnn.edgemine", "-o", path)
    return path


def test_predict_progress_bar_on_large_input(files, tmp_path):
    _onnx_file(files)
    x = np.random.default_rng(0).random((3000, 8, 8, 1), dtype=np.float32)
    np.save(tmp_path / "many.npy", x)
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(files["dir"] / "cnn.onnx"),
            str(tmp_path / "many.npy"),
            "-o",
            str(tmp_path / "many.npy.out.npy"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3/3 [" in result.output  # the bar (stderr) finished: 3 chunks of 1024
    assert np.load(tmp_path / "many.npy.out.npy").shape == (3000, 3)


# -------------------------------------------------------------------------------------- PNG


def test_read_png_every_kind(tmp_path):
    """PNG files from an independent encoder (this file's, zlib only) read through Pillow."""
    rng = np.random.default_rng(3)
    w, h = 7, 5
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
    p = write_png(tmp_path / "rgb.png", [bytes(r.ravel()) for r in rgb], w, h, 2, 8)
    np.testing.assert_array_equal(read_png(p), rgb)
    rgba = np.concatenate([rgb, np.full((h, w, 1), 7, np.uint8)], -1)
    p = write_png(tmp_path / "rgba.png", [bytes(r.ravel()) for r in rgba], w, h, 6, 8)
    np.testing.assert_array_equal(read_png(p), rgb)
    ga = np.stack([grey, grey // 2], -1)
    p = write_png(tmp_path / "ga.png", [bytes(r.ravel()) for r in ga], w, h, 4, 8)
    np.testing.assert_array_equal(read_png(p)[..., 0], grey)
    g16 = grey.astype(">u2") * 257
    p = write_png(tmp_path / "g16.png", [r.tobytes() for r in g16], w, h, 0, 16)
    np.testing.assert_allclose(read_png(p)[..., 0], grey, atol=1e-3)
    bits = rng.integers(0, 2, size=(h, w))
    packed = [bytes(np.packbits(r)) for r in bits.astype(np.uint8)]
    p = write_png(tmp_path / "g1.png", packed, w, h, 0, 1)
    np.testing.assert_array_equal(read_png(p)[..., 0], bits * 255)
    pal = rng.integers(0, 256, size=(4, 3), dtype=np.uint8)
    idx = rng.integers(0, 4, size=(h, w))
    rows = [
        bytes(np.packbits(np.unpackbits(r.astype(np.uint8)[:, None], axis=1)[:, -2:].ravel()))
        for r in idx
    ]
    p = write_png(tmp_path / "pal2.png", rows, w, h, 3, 2, palette=bytes(pal.ravel()))
    np.testing.assert_array_equal(read_png(p), pal[idx])
    p = write_png(tmp_path / "crc.png", [bytes(r) for r in grey], w, h, 0, 8, bad_crc=True)
    with pytest.raises(InputError, match="crc.png is not a readable image"):
        read_png(p)
    (tmp_path / "fake.png").write_bytes(b"GIF89a")
    with pytest.raises(InputError, match="fake.png is not a readable image"):
        read_png(tmp_path / "fake.png")


def test_predict_rgb_png_on_grey_model(files, tmp_path):
    d, model = files["dir"], files["model"]
    rgb = np.random.default_rng(4).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    p = write_png(tmp_path / "rgb.png", [bytes(r.ravel()) for r in rgb], 8, 8, 2, 8)
    result = run("predict", d / "cnn.edgemine", p, "-o", tmp_path / "rgb.npy")
    assert result.exit_code == 0, result.output
    luma = np.asarray(Image.fromarray(rgb).convert("L"))  # Pillow's own grey, as bundles do
    want = model.predict(luma[None, ..., None].astype(np.float32) / np.float32(255))
    np.testing.assert_allclose(np.load(tmp_path / "rgb.npy"), want, atol=1e-5)


# ---------------------------------------------------------------------------------- bench


def test_bench(files):
    d = files["dir"]
    result = run(
        "bench", d / "cnn.edgemine", "--min-time", "0.02", "--batch-size", "8", "--threads", "1"
    )
    assert result.exit_code == 0, result.output
    assert "edgemine engine" in result.output and "onnxruntime gain" in result.output
    result = run("bench", _onnx_file(files), "--min-time", "0.02", "--batch-size", "8", "--json")
    data = json.loads(result.output)
    assert [r["runner"] for r in data["results"]] == ["onnxruntime"]
    assert data["results"][0]["latency_ms"] > 0
    one_line_error(run("bench", d / "cnn.edgemine", "--batch-size", "1"), "batch-size")


def test_every_command_has_help():
    for name in ("export", "predict", "bench"):
        result = run(name, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


# ----------------------------------------------------------------------------- subprocess


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "edgemine.cli", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_subprocess_end_to_end(files, tmp_path):
    d = files["dir"]
    out = tmp_path / "sub.onnx"
    proc = _cli("export", str(d / "cnn.edgemine"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    proc = _cli("predict", str(out), str(d / "images.npy"))
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 5, proc.stderr
    proc = _cli("predict", str(out), str(d / "bad_shape.npy"))
    assert proc.returncode != 0 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    proc = _cli("--debug", "predict", str(out), str(d / "bad_shape.npy"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_python_m_edgemine_cli_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "edgemine.cli", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert proc.returncode == 0 and "Usage: edgemine" in proc.stdout


def test_text_model_end_to_end(tmp_path):
    from edgemine.layers import LSTM, Embedding
    from edgemine.preprocessing import Tokenizer, pad_sequences

    tok = Tokenizer(num_words=12)
    tok.fit_on_texts(["the cat sat on the mat", "the dog ate my homework", "a cat and a dog"])
    model = Sequential(
        [Embedding(12, 4, mask_zero=True, input_length=5), LSTM(3), Dense(2, activation="softmax")]
    )
    model.class_names = ["neg", "pos"]
    model.preprocessing = {
        "kind": "text",
        "word_index": tok.word_index,
        "num_words": 12,
        "maxlen": 5,
        "lower": True,
    }
    model.save(tmp_path / "text.edgemine")
    texts = tmp_path / "in.txt"
    texts.write_text("The CAT sat!\nunknown words only\nthe dog ate the cat and my homework mat\n")
    assert run("export", tmp_path / "text.edgemine", "-o", tmp_path / "text.onnx").exit_code == 0
    seqs = tok.texts_to_sequences(texts.read_text().splitlines())
    want = model.predict(pad_sequences(seqs, maxlen=5))
    for name in ("text.edgemine", "text.onnx"):
        result = run("predict", tmp_path / name, texts, "-o", tmp_path / f"{name}.npy")
        assert result.exit_code == 0, result.output
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), want, atol=1e-5)
    result = run("predict", tmp_path / "text.onnx", texts)
    assert result.output.splitlines()[0].split()[:2] == [
        "in.txt:1",
        ["neg", "pos"][int(want[0].argmax())],
    ]
    one_line_error(
        run("predict", tmp_path / "text.onnx", tmp_path / "text.edgemine"),
        "text.edgemine is not a text file",
    )


def test_export_bench_and_predict_a_model_with_two_inputs_and_two_outputs(tmp_path):
    """A functional model's export (several inputs and outputs) is verified against the engine
    and benchmarked; file prediction, which takes one input, says so in one line."""
    from edgemine import Input, Model
    from edgemine.layers import Concatenate, Embedding, GlobalAveragePooling1D

    image, words = Input((6, 6, 1), name="image"), Input((5,), dtype="int32", name="words")
    a = Flatten()(Conv2D(2, 3, activation="relu")(image))
    both = Concatenate()([a, GlobalAveragePooling1D()(Embedding(30, 4)(words))])
    outs = [Dense(3, activation="softmax", name="kind")(both), Dense(1, name="score")(both)]
    Model([image, words], outs).save(tmp_path / "two.edgemine")
    result = run("export", tmp_path / "two.edgemine")
    assert result.exit_code == 0, result.output
    assert "image (batch, 6, 6, 1) float32, words (batch, 5) int64 -> kind, score" in result.output
    assert "max |onnxruntime - engine|" in result.output
    for model in (tmp_path / "two.edgemine", tmp_path / "two.onnx"):
        result = run("bench", model, "--min-time", "0.02", "--batch-size", "4", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["results"][-1]["runner"] == "onnxruntime"
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 6, 1), np.float32))
    for model in (tmp_path / "two.edgemine", tmp_path / "two.onnx"):
        one_line_error(run("predict", model, tmp_path / "x.npy"), "2 inputs")
