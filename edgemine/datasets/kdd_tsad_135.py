"""KDD-TSAD 135 "InternalBleeding16": the heart rate of a patient with internal bleeding, 7,501
points with one labelled anomaly (points 4187-4198), from the UCR anomaly archive of the KDD Cup
2021 (Keogh, Dutta Roy, Naik, Agrawal, SIGKDD 2021), shipped from aeon 1.6.0 (BSD-3-Clause).

DATA.md's split: TRAIN = points 0..1199 (anomaly-free), TEST = points 1200..7500; z-score with
the TRAIN mean and standard deviation only; windows of 64 points, stride 1 (:func:`windows`).

Example:
    >>> from edgemine.datasets import kdd_tsad_135
    >>> values, is_anomaly = kdd_tsad_135.load_series()
    >>> len(values), int(is_anomaly.sum()), kdd_tsad_135.TRAIN_POINTS
    (7501, 12, 1200)
    >>> kdd_tsad_135.windows(values[:1200], 64).shape
    (1137, 64)
"""

from __future__ import annotations

import functools
import gzip

import numpy as np

from edgemine.datasets._files import frozen, read_data_file

__all__ = ["DATA_FILE", "TRAIN_POINTS", "WINDOW", "load_series", "windows"]

DATA_FILE = "kdd_tsad_135.csv.gz"
TRAIN_POINTS = 1200
WINDOW = 64


@functools.lru_cache(maxsize=1)
def _series() -> tuple[np.ndarray, ...]:
    lines = gzip.decompress(read_data_file(DATA_FILE)).decode("ascii").splitlines()
    if lines[0] != "timestamp,value,is_anomaly" or len(lines) != 7502:
        raise ValueError(f"corrupt {DATA_FILE}")
    table = np.array([line.split(",") for line in lines[1:]], dtype=np.float64)
    if not np.array_equal(table[:, 0], np.arange(len(table))):
        raise ValueError(f"corrupt {DATA_FILE}: timestamps are not 0, 1, 2, ...")
    return frozen(table[:, 1].copy(), table[:, 2].astype(bool))


def load_series() -> tuple[np.ndarray, np.ndarray]:
    """``(values, is_anomaly)``: float64 (7501,) and bool (7501,); the first ``TRAIN_POINTS``
    are the training part."""
    values, flags = _series()
    return values.copy(), flags.copy()


def windows(series: np.ndarray, window: int = WINDOW, stride: int = 1) -> np.ndarray:
    """Every ``window`` consecutive points, starting each ``stride`` points: (n, window)."""
    series = np.asarray(series)
    if window < 1 or stride < 1 or len(series) < window:
        raise ValueError(
            f"cannot cut windows of {window} (stride {stride}) from {len(series)} points"
        )
    starts = np.arange(0, len(series) - window + 1, stride)
    return series[starts[:, None] + np.arange(window)]
