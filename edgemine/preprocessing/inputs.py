"""Model inputs from files and arrays, prepared exactly as a model's preprocessing says.

The one place where images and texts become model inputs: ``edgemine predict`` uses it, and
``write_bundle`` copies this file into every bundle as ``edgemine_inputs.py``, so that ``run.py``
on a Pi prepares a PNG, a JPEG or a line of text exactly as the engine on the workstation does.
It needs numpy, and Pillow for image files; it imports nothing from edgemine (keep it so: the
bundle carries it alone).

The preprocessing dict (a model's ``preprocessing`` metadata) holds ``kind``: ``"image"``
(``height``, ``width``, ``channels``, ``scale``, ``layout`` ``"NHWC"``/``"NCHW"``) or ``"text"``
(``word_index``, ``num_words``, ``maxlen``, ``lower``, ``filters``, ``split``, ``char_level``,
``oov_token``, ``padding``, ``truncating``: Keras 2's Tokenizer and ``pad_sequences``).

>>> pre = {"kind": "image", "height": 2, "width": 2, "channels": 1, "scale": 1 / 255}
>>> rgb = np.full((2, 2, 3), (255, 0, 0), np.uint8)
>>> image_input(rgb, pre, "red.png")[0, :, :, 0]  # Pillow's grey of pure red is 76
array([[0.29803923, 0.29803923],
       [0.29803923, 0.29803923]], dtype=float32)
"""

from __future__ import annotations

import functools
import os

import numpy as np

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

_GREY_MODES = ("1", "L", "LA", "La")
_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


class InputError(ValueError):
    """An input that cannot become a model input; the message is one line naming it."""


def is_image_file(path: str | os.PathLike) -> bool:
    """Does the file name end like an image this module reads?

    >>> is_image_file("cat.JPG"), is_image_file("tweets.txt")
    (True, False)
    """
    return str(path).lower().endswith(IMAGE_SUFFIXES)


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file (PNG, JPEG, BMP, GIF, TIFF, WebP, ...) as uint8 (height, width, channels):
    grey images have 1 channel, everything else 3 (alpha dropped, palettes expanded, 16-bit
    grey scaled to 8 bits). Decoded by Pillow."""
    name = os.path.basename(str(path))
    try:
        from PIL import Image
    except ImportError:
        raise InputError(f"{name}: reading images needs Pillow (pip install pillow)") from None
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in _GREY_MODES:
                arr = np.asarray(im.convert("L"))
            elif mode in _WIDE_GREY_MODES:
                wide = np.asarray(im, dtype=np.float64)
                arr = np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
            else:
                arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise InputError(f"input file not found: {path}") from None
    except Exception as exc:  # Pillow raises many types for a bad or hostile file
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(f"{name} is not a readable image ({reason})") from None
    return arr[:, :, None] if arr.ndim == 2 else np.ascontiguousarray(arr)


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> uint8 grey (..., 1) with Pillow's integer ITU-R 601 luma, so an
    array converts exactly as ``Image.convert("L")`` converts a file.

    >>> to_grey(np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8))[:, 0]
    array([ 76, 150,  29], dtype=uint8)
    """
    c = rgb.astype(np.uint32)
    grey = (c[..., 0] * 19595 + c[..., 1] * 38470 + c[..., 2] * 7471 + 0x8000) >> 16
    return grey.astype(np.uint8)[..., None]


def fit_channels(img: np.ndarray, channels: int, source: str) -> np.ndarray:
    """uint8 (H, W, C) with C made ``channels``: alpha dropped, RGB to grey, grey to RGB."""
    have = img.shape[2]
    if have in (2, 4):  # grey + alpha, RGBA
        img, have = img[:, :, : have - 1], have - 1
    if have == channels:
        return img
    if have == 3 and channels == 1:
        return to_grey(img)
    if have == 1 and channels == 3:
        return np.repeat(img, 3, axis=2)
    raise InputError(f"{source} has {have} channels; the model takes {channels}")


def image_input(img: np.ndarray, pre: dict, source: str) -> np.ndarray:
    """uint8 (H, W[, C]) -> the float32 model input (1, ...) in the model's layout and scale."""
    height, width, channels = pre["height"], pre["width"], pre["channels"]
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[:2] != (height, width):
        raise InputError(
            f"{source} is {img.shape[1]}x{img.shape[0]} pixels; "
            f"the model takes {width}x{height} (width x height): resize it first"
        )
    img = fit_channels(img, channels, source)
    x = img.astype(np.float32) * np.float32(pre.get("scale", 1.0 / 255.0))
    if str(pre.get("layout", "NHWC")).upper() == "NCHW":
        x = x.transpose(2, 0, 1)
    return x[None]


def image_file_input(path: str | os.PathLike, pre: dict) -> np.ndarray:
    """An image file as the float32 model input (1, ...)."""
    return image_input(read_image(path), pre, os.path.basename(str(path)))


def images_from_array(arr: np.ndarray, pre: dict, sample_shape: tuple, source: str) -> np.ndarray:
    """Images in an array as float32 model inputs (n, ...): floats are taken as model-ready
    (a left-out single channel is added), integers as raw 0..255 pixels (n, H, W[, C]) that
    are converted, scaled and laid out as ``image_input`` does; one image may omit the batch."""
    want = tuple(sample_shape)
    nchw = str(pre.get("layout", "NHWC")).upper() == "NCHW"
    if arr.dtype.kind == "f":
        short = (want[1:] if nchw else want[:-1]) if (want[0 if nchw else -1] == 1) else None
        if arr.shape in (want, short):
            arr = arr[None]
        if short is not None and arr.shape[1:] == short:
            arr = np.expand_dims(arr, 1 if nchw else arr.ndim)
        if arr.shape[1:] != want:
            shape = ", ".join(str(d) for d in want)
            raise InputError(
                f"{source} holds floats of shape {arr.shape}; the model takes (n, {shape})"
            )
        if not np.isfinite(arr).all():
            raise InputError(f"{source} contains NaN or infinite values")
        return np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype.kind not in "iub":
        raise InputError(f"{source} has dtype {arr.dtype}; expected uint8 images or floats")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise InputError(f"{source}: integer images must hold values 0..255")
    arr = arr.astype(np.uint8)
    hw = (pre["height"], pre["width"])
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[:2] == hw and arr.shape[2] in (1, 2, 3, 4)):
        arr = arr[None]
    if arr.ndim not in (3, 4) or len(arr) == 0:
        raise InputError(f"{source} has shape {arr.shape}; expected (n, height, width[, channels])")
    return np.concatenate([image_input(img, pre, f"{source}[{i}]") for i, img in enumerate(arr)])


# --------------------------------------------------------------------------------------------
# text (Keras 2's Tokenizer and pad_sequences)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _translation_table(filters: str, split: str) -> dict[int, str]:
    return str.maketrans({c: split for c in filters})


def text_to_word_sequence(
    text: str, filters: str = DEFAULT_FILTERS, lower: bool = True, split: str = " "
) -> list[str]:
    """Split a text into words, like Keras 2's ``text_to_word_sequence``.

    Every character of ``filters`` becomes ``split``, then the text is split on
    ``split`` and empty strings are dropped.  Other whitespace (for example ``\\r``)
    is *not* a separator.

    Example:
        >>> text_to_word_sequence("Hello, World!  It's me.")
        ['hello', 'world', "it's", 'me']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not isinstance(split, str):
        raise TypeError(f"split must be a str, got {type(split).__name__}")
    if not split:
        raise ValueError("split must be a non-empty string")
    if lower:
        text = text.lower()
    if filters:
        text = text.translate(_translation_table(filters, split))
    return [w for w in text.split(split) if w]


def word_ids(words, lookup, num_words: int | None, oov_index: int | None) -> list[int]:
    """Keras's Tokenizer rule: a word's index if known and below ``num_words``, else
    ``oov_index`` when the tokenizer has an OOV token, else nothing.

    >>> word_ids(["a", "b", "zz"], {"a": 1, "b": 5}.get, num_words=3, oov_index=None)
    [1]
    """
    ids = map(lookup, words)
    if oov_index is None:
        if num_words:
            return [i for i in ids if i is not None and i < num_words]
        return [i for i in ids if i is not None]
    if num_words:
        return [oov_index if i is None or i >= num_words else i for i in ids]
    return [oov_index if i is None else i for i in ids]


class TextEncoder:
    """Texts -> padded token ids (1, maxlen) with a model's stored vocabulary.

    >>> enc = TextEncoder({"word_index": {"good": 1, "day": 2}, "maxlen": 4})
    >>> enc.encode("A good, good day!", "text")
    array([[0, 1, 1, 2]])
    """

    def __init__(self, pre: dict):
        word_index = pre.get("word_index")
        if not isinstance(word_index, dict) or not word_index:
            raise InputError(
                "the model has no vocabulary (preprocessing word_index) to tokenise text with; "
                "give token ids as .npy instead"
            )
        self.word_index = {str(k): int(v) for k, v in word_index.items()}
        self.num_words = pre.get("num_words")
        self.maxlen = int(pre["maxlen"])
        self.lower = bool(pre.get("lower", True))
        self.filters = pre.get("filters", DEFAULT_FILTERS)
        self.split = pre.get("split", " ")
        self.char_level = bool(pre.get("char_level", False))
        self.padding = pre.get("padding", "pre")
        self.truncating = pre.get("truncating", "pre")
        oov = pre.get("oov_token")
        self.oov_index = self.word_index.get(oov) if oov is not None else None

    def tokens(self, text: str) -> list[int]:
        if self.char_level:
            words = list(text.lower() if self.lower else text)
        else:
            words = text_to_word_sequence(text, self.filters, self.lower, self.split)
        return word_ids(words, self.word_index.get, self.num_words, self.oov_index)

    def encode(self, text: str, source: str, truncate: bool = True) -> np.ndarray:
        """One text as int64 ids (1, maxlen); a longer text is cut as the model was trained
        (``truncating``), or refused when ``truncate`` is False."""
        ids, n = self.tokens(text), self.maxlen
        if len(ids) > n:
            if not truncate:
                raise InputError(
                    f"{source} has {len(ids)} tokens; the model takes at most maxlen={n} "
                    "(--truncate cuts it the way the model was trained)"
                )
            ids = ids[-n:] if self.truncating == "pre" else ids[:n]
        row = np.zeros((1, n), dtype=np.int64)
        if ids:
            if self.padding == "pre":
                row[0, n - len(ids) :] = ids
            else:
                row[0, : len(ids)] = ids
        return row


def token_ids(
    arr: np.ndarray, maxlen: int | None, vocab_size: int | None, source: str
) -> np.ndarray:
    """Integer token ids (n, maxlen) checked against the vocabulary; one row may omit the batch."""
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or not np.all(arr == np.round(arr)):
            raise InputError(f"{source} must hold integer token ids; got non-integer floats")
    elif arr.dtype.kind not in "iu":
        raise InputError(f"{source} has dtype {arr.dtype}; a text model takes integer token ids")
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or (maxlen is not None and arr.shape[1] != maxlen):
        raise InputError(f"{source} has shape {arr.shape}; the model takes (n, {maxlen}) token ids")
    if arr.size and (arr.min() < 0 or (vocab_size is not None and arr.max() >= vocab_size)):
        bad = int(arr.min() if arr.min() < 0 else arr.max())
        limit = f"0..{vocab_size - 1}" if vocab_size else "0 and up"
        raise InputError(f"{source} holds token id {bad}, outside the vocabulary ({limit})")
    return arr.astype(np.int64)
