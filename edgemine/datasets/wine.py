"""The UCI Wine table (178 wines, 13 chemical measurements, 3 cultivars), shipped as a CSV.

Source: scikit-learn 1.9.1's copy of the UCI Wine recognition data (Forina et al.; UCI lists
CC BY 4.0), rewritten with a header row and the class as its name (``edgemine/datasets/data/
SOURCES.md``). The rows are sorted by class (59/71/48); DATA.md's split: walking the rows in
file order, a class's r-th row (r from 0) is a test row when r % 5 == 4: 144 train rows
(48/57/39) and 34 test rows (11/14/9), file order kept in both.

Example:
    >>> from edgemine.datasets import wine
    >>> (x_train, y_train), (x_test, y_test) = wine.load_data()
    >>> x_train.shape, x_test.shape, wine.CLASS_NAMES
    ((144, 13), (34, 13), ('class_0', 'class_1', 'class_2'))
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from edgemine.datasets._files import frozen, read_data_file
from edgemine.datasets.splits import per_class_test_rows

__all__ = ["CLASS_NAMES", "DATA_FILE", "FEATURE_NAMES", "csv_text", "load_data", "write_csv"]

DATA_FILE = "wine.csv"
CLASS_NAMES = ("class_0", "class_1", "class_2")
FEATURE_NAMES = (
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
)


def csv_text() -> str:
    """The shipped CSV: a header (the 13 feature names, then ``class``) and 178 rows."""
    return read_data_file(DATA_FILE).decode("ascii")


def write_csv(path: str | os.PathLike) -> Path:
    """Write the CSV to ``path`` (to try ``edgemine train mlp --data wine.csv``)."""
    path = Path(path)
    path.write_text(csv_text(), encoding="ascii")
    return path


@functools.lru_cache(maxsize=1)
def _split() -> tuple[np.ndarray, ...]:
    lines = csv_text().splitlines()
    if lines[0].split(",") != [*FEATURE_NAMES, "class"] or len(lines) != 179:
        raise ValueError(f"corrupt {DATA_FILE}")
    rows = [line.split(",") for line in lines[1:]]
    x = np.array([[float(v) for v in row[:13]] for row in rows], dtype=np.float32)
    y = np.array([CLASS_NAMES.index(row[13]) for row in rows], dtype=np.int64)
    test = per_class_test_rows(y)
    return frozen(x[~test], y[~test], x[test], y[test])


def load_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)``: float32 features (n, 13), int64 classes."""
    x_tr, y_tr, x_te, y_te = (a.copy() for a in _split())
    return (x_tr, y_tr), (x_te, y_te)
