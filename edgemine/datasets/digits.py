"""8x8 handwritten digits (UCI's Optical Recognition of Handwritten Digits, test part: 1,797
images), shipped as scikit-learn 1.9.1's ``digits.csv.gz`` (values 0..16).

As images: 8-bit grey, pixel = round(v * 255 / 16). DATA.md's split: walking the rows in file
order, a class's r-th row (r from 0) is a test row when r % 5 == 4: 1,442 train and 355 test
images. :func:`write_folder` writes them as ``{train,test}/{label}/{row:04d}.png``, one
subfolder per class, the layout ``edgemine train cnn --data FOLDER`` reads.

Example:
    >>> from edgemine.datasets import digits
    >>> (x_train, y_train), (x_test, y_test) = digits.load_data()
    >>> x_train.shape, x_train.dtype, x_test.shape
    ((1442, 8, 8), dtype('uint8'), (355, 8, 8))
"""

from __future__ import annotations

import functools
import gzip
import io
import os
from pathlib import Path

import numpy as np

from edgemine.datasets._files import frozen, read_data_file
from edgemine.datasets.splits import per_class_test_rows

__all__ = ["DATA_FILE", "load_data", "write_folder"]

DATA_FILE = "digits.csv.gz"


@functools.lru_cache(maxsize=1)
def _split() -> tuple[np.ndarray, ...]:
    text = gzip.decompress(read_data_file(DATA_FILE)).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65) or table.min() < 0 or table[:, :64].max() > 16:
        raise ValueError(f"corrupt {DATA_FILE}")
    x = np.round(table[:, :64] * 255 / 16).astype(np.uint8).reshape(-1, 8, 8)
    y = table[:, 64]
    test = per_class_test_rows(y)
    rows = np.arange(len(y))
    return frozen(x[~test], y[~test], x[test], y[test], rows[~test], rows[test])


def load_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)``: uint8 images (n, 8, 8), int64 labels 0..9."""
    x_tr, y_tr, x_te, y_te = (a.copy() for a in _split()[:4])
    return (x_tr, y_tr), (x_te, y_te)


def write_folder(path: str | os.PathLike) -> Path:
    """Write the images as PNG files ``path/{train,test}/{label}/{row:04d}.png`` (``row``: the
    image's row in the source file) and return ``path``. Needs Pillow."""
    from PIL import Image

    root = Path(path)
    x_tr, y_tr, x_te, y_te, rows_tr, rows_te = _split()
    for split, x, y, rows in (("train", x_tr, y_tr, rows_tr), ("test", x_te, y_te, rows_te)):
        for img, label, row in zip(x, y, rows):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img, "L").save(folder / f"{row:04d}.png")
    return root
