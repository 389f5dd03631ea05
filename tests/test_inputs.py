"""edgemine.preprocessing.inputs: the one module that turns image files and texts into model
inputs, for `edgemine predict` and (copied) for bundles."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edgemine.preprocessing import inputs as I
from edgemine.preprocessing import pad_sequences
from edgemine.preprocessing.text import Tokenizer

PRE = {"kind": "image", "height": 6, "width": 5, "channels": 1, "scale": 1 / 255}


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), h=st.integers(1, 9), w=st.integers(1, 9))
def test_to_grey_equals_pillows_convert_l(seed, h, w):
    rgb = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    want = np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    np.testing.assert_array_equal(I.to_grey(rgb)[..., 0], want)


@pytest.mark.parametrize(
    "mode, suffix, channels",
    [
        ("L", ".png", 1),
        ("RGB", ".png", 3),
        ("RGBA", ".png", 3),
        ("LA", ".png", 1),
        ("P", ".png", 3),
        ("1", ".png", 1),
        ("I;16", ".png", 1),
        ("L", ".bmp", 1),
        ("RGB", ".bmp", 3),
        ("P", ".gif", 3),
        ("RGB", ".tif", 3),
        ("RGB", ".jpg", 3),
        ("L", ".jpeg", 1),
    ],
)
def test_read_image_modes_and_formats(tmp_path, mode, suffix, channels):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    img = Image.fromarray(rgb, "RGB")
    if mode == "I;16":
        grey = np.asarray(img.convert("L"))
        img = Image.fromarray(grey.astype(np.uint16) * 257)  # 16-bit grey, scaled back to 8
    elif mode != "RGB":
        img = img.convert(mode)
    path = tmp_path / f"x{suffix}"
    img.save(path)
    got = I.read_image(path)
    assert got.dtype == np.uint8 and got.shape == (6, 5, channels)
    if suffix in (".png", ".bmp", ".tif") and mode not in ("1", "P", "I;16"):  # lossless
        want = np.asarray(Image.open(path).convert("L" if channels == 1 else "RGB"))
        np.testing.assert_array_equal(got.reshape(want.shape), want)
    if mode == "I;16":
        np.testing.assert_array_equal(got[..., 0], np.asarray(Image.fromarray(rgb).convert("L")))
    x = I.image_file_input(path, PRE)  # any file into a grey model
    assert x.shape == (1, 6, 5, 1) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1


def test_image_input_layout_scale_and_errors():
    img = np.arange(30, dtype=np.uint8).reshape(6, 5)
    nchw = I.image_input(img, {**PRE, "channels": 3, "layout": "NCHW", "scale": 2.0}, "a")
    assert nchw.shape == (1, 3, 6, 5)
    np.testing.assert_array_equal(nchw[0, 2], img * np.float32(2.0))
    with pytest.raises(I.InputError, match="a is 6x5 pixels; the model takes 5x6"):
        I.image_input(img.T, PRE, "a")
    with pytest.raises(I.InputError, match="has 5 channels"):
        I.image_input(np.zeros((6, 5, 5), np.uint8), PRE, "a")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    )


def test_hostile_and_broken_image_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    bomb = tmp_path / "bomb.png"  # 100 bytes that declare 40,000 x 40,000 pixels
    bomb.write_bytes(
        _png_header(40000, 40000) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")
    )
    for name in ("empty.png", "text.jpg", "bomb.png"):
        with pytest.raises(I.InputError, match=f"{name} is not a readable image"):
            I.read_image(tmp_path / name)
    with pytest.raises(I.InputError, match="input file not found"):
        I.read_image(tmp_path / "missing.png")


def test_images_from_array_shapes_and_errors():
    raw = np.random.default_rng(2).integers(0, 256, size=(4, 6, 5), dtype=np.uint8)
    x = I.images_from_array(raw, PRE, (6, 5, 1), "raw.npy")
    np.testing.assert_array_equal(x, raw[..., None].astype(np.float32) * np.float32(1 / 255))
    np.testing.assert_array_equal(I.images_from_array(raw[0], PRE, (6, 5, 1), "one"), x[:1])
    floats = x[..., 0]  # model-ready floats with the single channel left out
    np.testing.assert_array_equal(I.images_from_array(floats, PRE, (6, 5, 1), "f"), x)
    with pytest.raises(I.InputError, match="NaN"):
        I.images_from_array(np.full((1, 6, 5, 1), np.nan, np.float32), PRE, (6, 5, 1), "n")
    with pytest.raises(I.InputError, match="values 0..255"):
        I.images_from_array(np.full((1, 6, 5), 300), PRE, (6, 5, 1), "big")
    with pytest.raises(I.InputError, match="dtype <U1"):
        I.images_from_array(np.array(["a"]), PRE, (6, 5, 1), "s")


WORDS = st.sampled_from(["good", "bad", "day", "The", "cat!", "dog,", "zebra", "a", "??", ""])


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.lists(WORDS, max_size=12).map(" ".join), min_size=1, max_size=5),
    num_words=st.sampled_from([None, 3, 5]),
    oov=st.sampled_from([None, "<oov>"]),
    padding=st.sampled_from(["pre", "post"]),
    truncating=st.sampled_from(["pre", "post"]),
)
def test_text_encoder_equals_tokenizer_and_pad_sequences(
    texts, num_words, oov, padding, truncating
):
    tok = Tokenizer(num_words=num_words, oov_token=oov)
    tok.fit_on_texts(["good good good day the the cat bad dog", "a day"])
    pre = {
        "word_index": tok.word_index,
        "num_words": num_words,
        "oov_token": oov,
        "maxlen": 4,
        "padding": padding,
        "truncating": truncating,
    }
    enc = I.TextEncoder(pre)
    got = np.concatenate([enc.encode(t, "t") for t in texts])
    want = pad_sequences(
        tok.texts_to_sequences(texts), maxlen=4, padding=padding, truncating=truncating
    )
    np.testing.assert_array_equal(got, want)


def test_text_encoder_refusals():
    with pytest.raises(I.InputError, match="no vocabulary"):
        I.TextEncoder({"maxlen": 3})
    enc = I.TextEncoder({"word_index": {"a": 1}, "maxlen": 2})
    with pytest.raises(I.InputError, match="line 3 has 3 tokens; the model takes at most maxlen=2"):
        enc.encode("a a a", "line 3", truncate=False)


def test_token_ids_checks():
    np.testing.assert_array_equal(I.token_ids(np.array([1, 2]), 2, 5, "ids"), [[1, 2]])
    with pytest.raises(I.InputError, match="ids holds token id 5, outside the vocabulary"):
        I.token_ids(np.array([[1, 5]]), 2, 5, "ids")
    with pytest.raises(I.InputError, match="token id -1"):
        I.token_ids(np.array([[1, -1]]), 2, 5, "ids")
    with pytest.raises(I.InputError, match="non-integer"):
        I.token_ids(np.array([[1.5, 2]]), 2, 5, "ids")
    with pytest.raises(I.InputError, match=r"shape \(1, 3\); the model takes \(n, 2\)"):
        I.token_ids(np.array([[1, 2, 3]]), 2, 5, "ids")
