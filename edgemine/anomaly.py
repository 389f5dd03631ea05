"""Anomaly detection in sensor series with an autoencoder trained on normal data.

A series (one or more value columns) is z-scored with its training part's mean and standard
deviation and cut into windows of ``window`` points every ``stride`` points. An autoencoder
learns to reconstruct the training windows; a window's score is its mean squared
reconstruction error, and a point's score is the largest score of the windows that cover it.
The threshold is the largest training-window score: a point above it is flagged. The window,
stride, statistics, threshold and column names live in the model's ``preprocessing``
(``kind: "series"``), so a saved model scores new data exactly as it scored its own.

Example:
    >>> import numpy as np
    >>> t = np.arange(600, dtype=np.float64)
    >>> normal = np.sin(t / 5)[:, None]
    >>> model = fit_detector(normal, ["x"], window=16, epochs=5, seed=0, verbose=0)
    >>> model.preprocessing["window"], model.preprocessing["threshold"] > 0
    (16, True)
    >>> spiky = normal.copy(); spiky[300:304] += 4.0
    >>> result = score_series(model, spiky)
    >>> bool(result.flags[300:304].all()), bool(result.flags[:200].any())
    (True, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .preprocessing.inputs import point_scores, series_windows, window_errors, windows

__all__ = [
    "ARCHITECTURES",
    "Scores",
    "fit_detector",
    "metrics",
    "plot_scores",
    "point_scores",
    "roc_auc",
    "score_series",
    "windows",
]

ARCHITECTURES = ("dense",)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve from ranks (ties share their mean rank); NaN with one class."""
    labels = np.asarray(labels, bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(order))
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mean_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _prf(truth: np.ndarray, flags: np.ndarray) -> dict:
    tp = int((truth & flags).sum())
    precision = tp / flags.sum() if flags.sum() else 0.0
    recall = tp / truth.sum() if truth.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


@dataclass
class Scores:
    """What scoring a series gives: per-window and per-point scores and flags."""

    window_scores: np.ndarray
    point_scores: np.ndarray
    flags: np.ndarray
    threshold: float
    window: int
    stride: int


def metrics(result: Scores, labels: np.ndarray) -> dict:
    """Precision, recall and F1 at the threshold and ROC-AUC, for windows (a window is
    anomalous when it holds an anomalous point) and for points."""
    labels = np.asarray(labels, bool)
    win_truth = windows(labels[:, None], result.window, result.stride)[:, :, 0].any(axis=1)
    covered = np.isfinite(result.point_scores)
    win_flags = result.window_scores > result.threshold
    return {
        "threshold": result.threshold,
        "windows": {
            "n": int(len(win_truth)),
            "anomalous": int(win_truth.sum()),
            **_prf(win_truth, win_flags),
            "roc_auc": roc_auc(win_truth, result.window_scores),
        },
        "points": {
            "n": int(covered.sum()),
            "anomalous": int(labels[covered].sum()),
            **_prf(labels[covered], result.flags[covered]),
            "roc_auc": roc_auc(labels[covered], result.point_scores[covered]),
        },
    }


def _build(arch: str, window: int, channels: int):
    from . import layers
    from .models import Sequential

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown autoencoder {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    size = window * channels
    hidden, code = max(16, size // 2), max(4, size // 8)
    return Sequential(
        [
            layers.Input(shape=(size,)),
            layers.Dense(hidden, activation="relu"),
            layers.Dense(code),
            layers.Dense(hidden, activation="relu"),
            layers.Dense(size),
        ]
    )


def _check_values(values, columns) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise ValueError(f"values of shape {values.shape} for {len(columns)} column(s)")
    if not np.isfinite(values).all():
        row = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
        raise ValueError(f"point {row} holds NaN or an infinite value")
    return values


def fit_detector(
    values: np.ndarray,
    columns: list[str],
    window: int = 64,
    stride: int = 1,
    arch: str = "dense",
    epochs: int = 200,
    batch_size: int = 32,
    seed: int | None = None,
    verbose: int = 1,
):
    """Train an autoencoder on normal data (points, channels) and return it, its threshold and
    scaling in ``model.preprocessing``."""
    from .utils import set_random_seed

    values = _check_values(values, columns)
    mean, std = values.mean(axis=0), values.std(axis=0)
    pre = {
        "kind": "series",
        "columns": list(columns),
        "window": int(window),
        "stride": int(stride),
        "mean": mean.tolist(),
        "std": np.where(std > 0, std, 1.0).tolist(),
        "score": "window_mse",
    }
    x = series_windows(values, pre)
    if seed is not None:
        set_random_seed(seed)
    model = _build(arch, window, len(columns))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, x, epochs=epochs, batch_size=batch_size, verbose=verbose)
    pre["threshold"] = float(window_errors(x, model.predict(x, verbose=0)).max())
    pre["architecture"] = arch
    model.preprocessing = pre
    return model


def score_series(model, values: np.ndarray) -> Scores:
    """Score a series (points, channels) with a detector made by :func:`fit_detector`."""
    pre = model.preprocessing or {}
    if pre.get("kind") != "series":
        raise ValueError("the model is not an anomaly detector (no series preprocessing)")
    values = _check_values(values, pre["columns"])
    x = series_windows(values, pre)
    errors = window_errors(x, model.predict(x, verbose=0))
    points = point_scores(errors, len(values), pre["window"], pre["stride"])
    return Scores(
        errors, points, points > pre["threshold"], pre["threshold"], pre["window"], pre["stride"]
    )


def _ranges(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True in ``mask``, end exclusive."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def plot_scores(path, values, columns, result: Scores, labels=None, first_index: int = 0) -> None:
    """A PNG: the series (top) with the labelled anomalies shaded, and the point scores
    (bottom, log scale) with the threshold and the flagged ranges. Needs matplotlib
    (``pip install 'edgemine[report]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'edgemine[report]'") from None
    x = np.arange(len(values)) + first_index
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True)
    for c, name in enumerate(columns):
        top.plot(x, values[:, c], lw=0.7, label=name)
    if labels is not None:
        for a, b in _ranges(np.asarray(labels, bool)):
            top.axvspan(x[a] - 0.5, x[b - 1] + 0.5, color="tab:red", alpha=0.3, lw=0)
        top.plot([], [], color="tab:red", alpha=0.3, lw=6, label="labelled anomaly")
    top.set_ylabel("value")
    top.legend(loc="upper right", fontsize=8)
    finite = np.isfinite(result.point_scores)
    bottom.plot(x[finite], result.point_scores[finite], lw=0.7, color="tab:blue", label="score")
    bottom.axhline(result.threshold, color="black", ls="--", lw=0.8, label="threshold")
    for a, b in _ranges(result.flags):
        bottom.axvspan(x[a] - 0.5, x[b - 1] + 0.5, color="tab:orange", alpha=0.35, lw=0)
    bottom.plot([], [], color="tab:orange", alpha=0.35, lw=6, label="flagged")
    bottom.set_yscale("log")
    bottom.set_ylabel("reconstruction error")
    bottom.set_xlabel("point")
    bottom.legend(loc="upper right", fontsize=8)
    top.set_title(
        f"{int(result.flags.sum())} of {len(values)} points flagged "
        f"(window {result.window}, threshold {result.threshold:.3g})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
