"""Model inputs from files and arrays, prepared exactly as a model's preprocessing says.

The one place where images and texts become model inputs: ``edgemine predict`` uses it, and
``write_bundle`` copies this file into every bundle as ``edgemine_inputs.py``, so that ``run.py``
on a Pi prepares a PNG, a JPEG or a line of text exactly as the engine on the workstation does.
It needs numpy, and Pillow for image files; it imports nothing from edgemine (keep it so: the
bundle carries it alone).

The preprocessing dict (a model's ``preprocessing`` metadata) holds ``kind``: ``"image"``
(``height``, ``width``, ``channels``, ``scale``, ``layout`` ``"NHWC"``/``"NCHW"``, ``resize``:
other sizes are resized, bilinear, instead of refused), ``"text"`` (``word_index``,
``num_words``, ``maxlen``, ``lower``, ``filters``, ``split``, ``char_level``, ``oov_token``,
``padding``, ``truncating``: Keras 2's Tokenizer and ``pad_sequences``), ``"table"``
(``columns``: the feature columns in the model's order, ``mean`` and ``std`` of each from the
training rows, ``label_column``) or ``"series"`` (an anomaly detector: ``columns``, ``mean``,
``std``, ``window``, ``stride``, ``threshold``; see :func:`series_windows`).

>>> pre = {"kind": "image", "height": 2, "width": 2, "channels": 1, "scale": 1 / 255}
>>> rgb = np.full((2, 2, 3), (255, 0, 0), np.uint8)
>>> image_input(rgb, pre, "red.png")[0, :, :, 0]  # Pillow's grey of pure red is 76
array([[0.29803923, 0.29803923],
       [0.29803923, 0.29803923]], dtype=float32)
"""

from __future__ import annotations

import csv
import functools
import math
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
    if img.shape[:2] != (height, width) and pre.get("resize"):
        img = resize(img, height, width)
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


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (H, W, C) resized to (height, width, C) with Pillow's bilinear filter (with its
    antialiasing when shrinking), one channel at a time so every channel count works."""
    from PIL import Image

    planes = [
        np.asarray(Image.fromarray(img[:, :, c]).resize((width, height), Image.Resampling.BILINEAR))
        for c in range(img.shape[2])
    ]
    return np.stack(planes, axis=2)


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


# --------------------------------------------------------------------------------------------
# tables (CSV with a header)
# --------------------------------------------------------------------------------------------


def read_csv(
    path: str | os.PathLike, text: str | None = None
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A CSV with a header row: the column names and ``(line number, cells)`` for each
    non-blank row (``text`` instead of reading ``path``, which then only names the source)."""
    name = os.path.basename(str(path))
    try:
        if text is None:
            with open(path, newline="", encoding="utf-8-sig") as f:
                text = f.read()
    except FileNotFoundError:
        raise InputError(f"input file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{name} is not a readable UTF-8 text file ({exc})") from None
    lines = list(csv.reader(text.splitlines()))
    numbered = [
        (i, [c.strip() for c in row])
        for i, row in enumerate(lines, 1)
        if any(c.strip() for c in row)
    ]
    if not numbered:
        raise InputError(f"{name} is empty")
    (_, header), rows = numbered[0], numbered[1:]
    if len(set(header)) != len(header) or not all(header):
        raise InputError(f"{name}: the header row needs distinct, non-empty column names")
    for line, cells in rows:
        if len(cells) != len(header):
            raise InputError(f"{name}, line {line}: {len(cells)} values for {len(header)} columns")
    if not rows:
        raise InputError(f"{name} has a header but no rows")
    return header, rows


def table_values(header: list[str], rows, columns: list[str], source: str) -> np.ndarray:
    """The named columns of CSV rows as float64 (n, len(columns)), in ``columns``' order, the
    file's column order free; a missing column, a missing value or a non-number is refused
    naming the line and the column."""
    where = {name: i for i, name in enumerate(header)}
    absent = [c for c in columns if c not in where]
    if absent:
        raise InputError(
            f"{source} has no column {absent[0]!r} (the model reads {', '.join(columns)})"
        )
    out = np.empty((len(rows), len(columns)), dtype=np.float64)
    for r, (line, cells) in enumerate(rows):
        for c, name in enumerate(columns):
            cell = cells[where[name]]
            try:
                value = float(cell)
            except ValueError:
                what = "a missing value" if cell == "" else f"not a number: {cell!r:.40}"
                raise InputError(f"{source}, line {line}, column {name!r}: {what}") from None
            if not math.isfinite(value):
                raise InputError(f"{source}, line {line}, column {name!r}: {cell} is not finite")
            out[r, c] = value
    return out


def table_stats(values: np.ndarray) -> tuple[list[float], list[float]]:
    """Each column's mean and standard deviation (1 where a column is constant)."""
    mean, std = values.mean(axis=0), values.std(axis=0)
    return mean.tolist(), np.where(std > 0, std, 1.0).tolist()


def table_input(header: list[str], rows, pre: dict, source: str) -> np.ndarray:
    """CSV rows -> the model's float32 input (n, features): the model's columns in its order,
    standardised with the training rows' mean and std; a label column is ignored."""
    values = table_values(header, rows, list(pre["columns"]), source)
    x = (values - np.asarray(pre["mean"])) / np.asarray(pre["std"])
    return x.astype(np.float32)


# --------------------------------------------------------------------------------------------
# series (anomaly detectors: windows in, reconstructions out)
# --------------------------------------------------------------------------------------------


def windows(values: np.ndarray, window: int, stride: int = 1) -> np.ndarray:
    """(points, channels) -> (n, window, channels): every ``window`` points, each ``stride``.

    >>> windows(np.arange(5.0)[:, None], 3, 2)[:, :, 0].tolist()
    [[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]]
    """
    if window < 2 or stride < 1:
        raise InputError(f"window must be >= 2 and stride >= 1, got {window} and {stride}")
    if len(values) < window:
        raise InputError(f"a series of {len(values)} points is shorter than the window ({window})")
    starts = np.arange(0, len(values) - window + 1, stride)
    return values[starts[:, None] + np.arange(window)]


def series_windows(values: np.ndarray, pre: dict) -> np.ndarray:
    """A series (points, channels) z-scored with the training statistics and cut into the
    detector's flattened float32 windows (n, window * channels)."""
    z = (np.asarray(values, np.float64) - np.asarray(pre["mean"])) / np.asarray(pre["std"])
    w = windows(z.astype(np.float32), pre["window"], pre["stride"])
    return w.reshape(len(w), -1)


def window_errors(x: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Each window's mean squared reconstruction error (float64)."""
    return ((np.asarray(reconstruction) - x) ** 2).mean(axis=1).astype(np.float64)


POINT_RULES = ("max", "min")


def point_scores(
    window_scores: np.ndarray, n_points: int, window: int, stride: int = 1, rule: str = "max"
):
    """Each point's score from the windows covering it: the largest (``rule="max"``: a point
    is flagged when any window covering it is) or the smallest (``"min"``: only when every
    window covering it is, as keras.io's anomaly example flags points). -inf for a point no
    window covers (at the end of a series whose length the stride does not divide).

    >>> point_scores(np.array([1.0, 3.0]), 5, 3, 2).tolist()
    [1.0, 1.0, 3.0, 3.0, 3.0]
    >>> point_scores(np.array([1.0, 3.0]), 5, 3, 2, rule="min").tolist()
    [1.0, 1.0, 1.0, 3.0, 3.0]
    """
    if rule not in POINT_RULES:
        raise ValueError(f"point rule must be one of {', '.join(POINT_RULES)}, got {rule!r}")
    out = np.full(n_points, -np.inf if rule == "max" else np.inf)
    starts = np.arange(len(window_scores)) * stride
    combine = np.maximum if rule == "max" else np.minimum
    for k in range(window):  # one shift at a time: window passes over n points
        combine.at(out, starts + k, window_scores)
    out[np.isposinf(out)] = -np.inf  # uncovered points: -inf under both rules
    return out
