"""BasicMotions (UEA archive): a smart watch's 3-D accelerometer and 3-D gyroscope at 10 Hz for
10 s, while standing, running, walking or playing badminton. 40 train and 40 test cases, 10 per
class each, the archive's own split; each case is (100 steps, 6 channels), time first and
channels last (the layout of Keras's Conv1D and LSTM).

Source: aeon 1.6.0's ``BasicMotions_{TRAIN,TEST}.ts`` (BSD-3-Clause; cite Bagnall et al., "The
UEA multivariate time series classification archive, 2018"), see ``SOURCES.md``.

Example:
    >>> from edgemine.datasets import basicmotions
    >>> (x_train, y_train), (x_test, y_test) = basicmotions.load_data()
    >>> x_train.shape, x_test.shape, basicmotions.CLASS_NAMES
    ((40, 100, 6), (40, 100, 6), ('Standing', 'Running', 'Walking', 'Badminton'))
"""

from __future__ import annotations

import functools

import numpy as np

from edgemine.datasets._files import frozen, read_npz

__all__ = ["CLASS_NAMES", "DATA_FILE", "load_data"]

DATA_FILE = "basicmotions.npz"
CLASS_NAMES = ("Standing", "Running", "Walking", "Badminton")


@functools.lru_cache(maxsize=1)
def _split() -> tuple[np.ndarray, ...]:
    arrays = read_npz(DATA_FILE)
    if tuple(arrays["class_names"].tolist()) != CLASS_NAMES:
        raise ValueError(f"corrupt {DATA_FILE}: classes {arrays['class_names']}")
    parts = tuple(arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    if parts[0].shape != (40, 100, 6) or parts[2].shape != (40, 100, 6):
        raise ValueError(f"corrupt {DATA_FILE}")
    x_tr, y_tr, x_te, y_te = parts
    return frozen(
        x_tr.astype(np.float32),
        y_tr.astype(np.int64),
        x_te.astype(np.float32),
        y_te.astype(np.int64),
    )


def load_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(x_train, y_train), (x_test, y_test)``: float32 (n, 100, 6), int64 labels 0..3."""
    x_tr, y_tr, x_te, y_te = (a.copy() for a in _split())
    return (x_tr, y_tr), (x_te, y_te)
