"""Your own data: a CSV table, a CSV of texts, or a folder of images, as training arrays.

Each loader either fits the preprocessing on the training rows (a new model) or applies a
model's stored preprocessing (``pre``: evaluating or fine-tuning a trained model), through
``edgemine.preprocessing.inputs``, the module ``edgemine predict`` and bundles use, so that a
file is prepared the same way in training, evaluation, prediction and on the device.

Splits: a folder with ``train/`` and ``test/`` subfolders gives both; a CSV holds out DATA.md's
per-class test rows (each class's 5th, 10th, ... row in file order, 20 %); a plain folder of
class subfolders is all training data.

Example:
    >>> from edgemine.datasets import wine
    >>> d = load_table_csv("wine.csv", text=wine.csv_text())
    >>> d.x_train.shape, d.class_names, d.preprocessing["label_column"]
    ((144, 13), ['class_0', 'class_1', 'class_2'], 'class')
    >>> abs(float(d.x_train.mean())) < 1e-6  # standardised with the training rows' statistics
    True
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemine.datasets.splits import per_class_test_rows
from edgemine.preprocessing import inputs

__all__ = ["Data", "load_image_folder", "load_table_csv", "load_text_csv"]


@dataclass
class Data:
    """Prepared arrays, ready for ``fit`` / ``evaluate`` (a user's file may lack either split)."""

    x_train: np.ndarray | None
    y_train: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    preprocessing: dict | None = None
    class_names: list[str] | None = None


def _natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _class_ids(labels: list[str], class_names: list[str] | None, source: str):
    """Label strings -> ids; the class names are the sorted labels unless a model gives them."""
    names = class_names or sorted(set(labels), key=_natural)
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise inputs.InputError(
            f"{source}: label {unknown[0]!r} is not one of the model's classes ({', '.join(names)})"
        )
    return np.array([index[v] for v in labels], dtype=np.int64), list(names)


def load_table_csv(
    path: str | os.PathLike,
    label_column: str | None = None,
    pre: dict | None = None,
    class_names: list[str] | None = None,
    text: str | None = None,
) -> Data:
    """A CSV with a header: every column but the label one (default: the last, or the
    model's) is a numeric feature, standardised with the training rows' mean and std."""
    source = os.path.basename(str(path))
    header, rows = inputs.read_csv(path, text)
    label = label_column or (pre or {}).get("label_column") or header[-1]
    if label not in header:
        raise inputs.InputError(
            f"{source} has no label column {label!r} (columns: {', '.join(header)})"
        )
    at = header.index(label)
    labels = [cells[at] for _, cells in rows]
    missing = [line for (line, _), v in zip(rows, labels) if v == ""]
    if missing:
        raise inputs.InputError(f"{source}, line {missing[0]}, column {label!r}: a missing label")
    y, names = _class_ids(labels, class_names, source)
    test = per_class_test_rows(y)
    if pre is None:
        columns = [c for c in header if c != label]
        train_values = inputs.table_values(
            header, [r for r, t in zip(rows, test) if not t], columns, source
        )
        mean, std = inputs.table_stats(train_values)
        pre = {"kind": "table", "columns": columns, "label_column": label, "mean": mean, "std": std}
    x = inputs.table_input(header, rows, pre, source)
    return Data(x[~test], y[~test], x[test], y[test], pre, names)


def load_text_csv(
    path: str | os.PathLike,
    text_column: str,
    label_column: str | None = None,
    pre: dict | None = None,
    class_names: list[str] | None = None,
    num_words: int = 10000,
    maxlen: int = 100,
) -> Data:
    """A CSV with a text column and a label column: a Keras Tokenizer with ``num_words`` is
    fitted on the training rows' texts (a new model) and the texts are padded to ``maxlen``."""
    from edgemine.preprocessing.text import Tokenizer

    source = os.path.basename(str(path))
    header, rows = inputs.read_csv(path)
    label = label_column or (pre or {}).get("label_column") or header[-1]
    for column in (text_column, label):
        if column not in header:
            raise inputs.InputError(
                f"{source} has no column {column!r} (columns: {', '.join(header)})"
            )
    texts = [cells[header.index(text_column)] for _, cells in rows]
    y, names = _class_ids([cells[header.index(label)] for _, cells in rows], class_names, source)
    test = per_class_test_rows(y)
    if pre is None:
        tok = Tokenizer(num_words=num_words)
        tok.fit_on_texts([t for t, is_test in zip(texts, test) if not is_test])
        pre = {
            "kind": "text",
            "maxlen": maxlen,
            "num_words": num_words,
            "word_index": {w: i for w, i in tok.word_index.items() if i < num_words},
            "label_column": label,
            "text_column": text_column,
        }
    encoder = inputs.TextEncoder(pre)
    x = np.concatenate(
        [encoder.encode(t, f"{source}, line {line}") for t, (line, _) in zip(texts, rows)]
    )
    return Data(x[~test], y[~test], x[test], y[test], pre, names)


def _image_files(folder: Path) -> tuple[list[Path], list[str]]:
    classes = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: _natural(p.name))
    files, labels = [], []
    for cls in classes:
        for f in sorted(cls.iterdir(), key=lambda p: _natural(p.name)):
            if f.is_file() and inputs.is_image_file(f):
                files.append(f)
                labels.append(cls.name)
    if not files:
        raise inputs.InputError(
            f"{folder} holds no images in class subfolders (expected {folder}/CLASS/IMAGE.png)"
        )
    return files, labels


def _image_preprocessing(images: list[np.ndarray], files: list[Path], image_size) -> dict:
    channels = 1 if all(img.shape[2] == 1 for img in images) else 3
    if image_size:
        height, width = image_size
    else:
        first = {}
        for f, img in zip(files, images):
            first.setdefault(img.shape[:2], f)
        if len(first) > 1:
            (s1, f1), (s2, f2) = list(first.items())[:2]
            raise inputs.InputError(
                f"the images have different sizes ({f1.name}: {s1[1]}x{s1[0]}, {f2.name}: "
                f"{s2[1]}x{s2[0]}): pass --image-size HxW to resize them"
            )
        sizes = set(first)
        height, width = sizes.pop()
    return {
        "kind": "image",
        "height": int(height),
        "width": int(width),
        "channels": channels,
        "scale": 1.0 / 255.0,
        "layout": "NHWC",
        "resize": bool(image_size),
    }


def load_image_folder(
    path: str | os.PathLike,
    image_size: tuple[int, int] | None = None,
    pre: dict | None = None,
    class_names: list[str] | None = None,
) -> Data:
    """A folder of class subfolders of images (PNG, JPEG, ...), or one with ``train/`` and
    ``test/`` folders of them. Grey images stay grey unless some are in colour; every image is
    scaled to 0..1 and, with ``image_size`` (height, width), resized."""
    root = Path(path)
    if not root.is_dir():
        raise inputs.InputError(f"{path} is not a folder")
    parts = [root / "train", root / "test"] if (root / "train").is_dir() else [root]
    loaded = []
    for folder in parts:
        if not folder.is_dir():
            loaded.append(None)
            continue
        files, labels = _image_files(folder)
        loaded.append((files, labels, [inputs.read_image(f) for f in files]))
    files, labels, images = loaded[0]
    if pre is None:
        pre = _image_preprocessing(images, files, image_size)
    names = class_names or sorted({*labels, *(loaded[-1][1] if loaded[-1] else [])}, key=_natural)
    arrays = []
    for part in loaded:
        if part is None:
            arrays += [None, None]
            continue
        files, labels, images = part
        x = np.concatenate([inputs.image_input(img, pre, f.name) for f, img in zip(files, images)])
        arrays += [x, _class_ids(labels, names, str(root))[0]]
    if len(parts) == 1:
        arrays += [None, None]
    return Data(*arrays, pre, names)
