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

from dataclasses import dataclass

import numpy as np

from .preprocessing.inputs import (
    POINT_RULES,
    point_scores,
    series_windows,
    window_errors,
    windows,
)
from .report.metrics import rank_auc

__all__ = [
    "ARCHITECTURES",
    "Scores",
    "fit_detector",
    "metrics",
    "plot_scores",
    "point_scores",
    "score_series",
    "windows",
]

#: the autoencoders ``fit_detector`` builds; the first is the default
ARCHITECTURES = ("lstm", "dense", "conv1d")


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
    """Precision, recall and F1 at the threshold and ROC-AUC (None with one class only), for
    windows (a window is anomalous when it holds an anomalous point) and for points."""
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
            "roc_auc": rank_auc(win_truth, result.window_scores),
        },
        "points": {
            "n": int(covered.sum()),
            "anomalous": int(labels[covered].sum()),
            **_prf(labels[covered], result.flags[covered]),
            "roc_auc": rank_auc(labels[covered], result.point_scores[covered]),
        },
    }


#: per architecture: default epochs, Adam's learning rate, and the fraction of the epochs after
#: which it drops to a fifth (None: never). Measured on KDD-TSAD 135 with seeds 0-2: the LSTM
#: autoencoder needs the larger step to learn 64-step windows in 100 epochs, and the smaller one
#: at the end to settle (window F1 0.921-0.973, against 0.853-0.987 at a constant 0.005).
_TRAINING = {"lstm": (100, 0.005, 0.7), "dense": (200, 0.001, None), "conv1d": (100, 0.001, None)}
_LSTM_UNITS = 32


def _dense_autoencoder(window: int, channels: int) -> list:
    from . import layers

    size = window * channels
    hidden, code = max(16, size // 2), max(4, size // 8)
    return [
        layers.Dense(hidden, activation="relu"),
        layers.Dense(code),
        layers.Dense(hidden, activation="relu"),
        layers.Dense(size),
    ]


def _lstm_autoencoder(window: int, channels: int) -> list:
    """Keras's LSTM autoencoder: the encoder's last state, repeated for every step, decoded by
    a second LSTM and a per-step Dense back to the channels."""
    from . import layers

    return [
        layers.Reshape((window, channels)),
        layers.LSTM(_LSTM_UNITS),
        layers.RepeatVector(window),
        layers.LSTM(_LSTM_UNITS, return_sequences=True),
        layers.TimeDistributed(layers.Dense(channels)),
        layers.Reshape((window * channels,)),
    ]


def _conv1d_autoencoder(window: int, channels: int) -> list:
    """Keras's timeseries anomaly example (two strided Conv1D down to a quarter of the window,
    two Conv1DTranspose back, a last one to the channels) without its two Dropout layers: with
    them, KDD-TSAD 135's training windows kept an error of 0.02 and window F1 fell to 0.31."""
    from . import layers

    if window % 4:
        raise ValueError(
            f"the conv1d autoencoder halves the window twice: it needs a window divisible by 4, "
            f"got {window}"
        )
    conv = {"kernel_size": 7, "padding": "same"}
    return [
        layers.Reshape((window, channels)),
        layers.Conv1D(32, strides=2, activation="relu", **conv),
        layers.Conv1D(16, strides=2, activation="relu", **conv),
        layers.Conv1DTranspose(16, strides=2, activation="relu", **conv),
        layers.Conv1DTranspose(32, strides=2, activation="relu", **conv),
        layers.Conv1DTranspose(channels, **conv),
        layers.Reshape((window * channels,)),
    ]


def _build(arch: str, window: int, channels: int):
    """The autoencoder: every architecture maps flattened windows (window * channels) to their
    reconstruction, so scoring, export and the bundle are one code path for all."""
    from . import layers
    from .models import Sequential

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown autoencoder {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    make = {"lstm": _lstm_autoencoder, "dense": _dense_autoencoder, "conv1d": _conv1d_autoencoder}
    body = make[arch](window, channels)
    return Sequential([layers.Input(shape=(window * channels,)), *body])


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
    arch: str = "lstm",
    epochs: int | None = None,
    batch_size: int = 32,
    seed: int | None = None,
    verbose: int = 1,
    point_rule: str = "max",
):
    """Train an autoencoder on normal data (points, channels) and return it, its threshold and
    scaling in ``model.preprocessing``. ``arch``: 'lstm' (LSTM encoder, RepeatVector, LSTM
    decoder, TimeDistributed(Dense); 100 epochs, Adam at 0.005 then 0.001 for the last 30 %) or
    'dense' (200 epochs, Adam at 0.001) or 'conv1d' (Conv1D / Conv1DTranspose, 100 epochs, Adam at
    0.001; the window must be divisible by 4). ``point_rule``: a point's score is the largest
    ('max', shared/DATA.md's rule) or the smallest ('min', keras.io's example: flagged only when
    every window covering it is) error of the windows covering it."""
    from .callbacks import LearningRateScheduler
    from .optimizers import Adam
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
        "point_rule": _point_rule(point_rule),
    }
    x = series_windows(values, pre)
    if seed is not None:
        set_random_seed(seed)
    model = _build(arch, window, len(columns))
    default_epochs, learning_rate, drop_at = _TRAINING[arch]
    epochs = default_epochs if epochs is None else epochs
    callbacks = []
    if drop_at is not None:
        last_fast = int(drop_at * epochs)
        callbacks.append(
            LearningRateScheduler(
                lambda e, lr: learning_rate if e < last_fast else learning_rate / 5
            )
        )
    model.compile(optimizer=Adam(learning_rate=learning_rate), loss="mse")
    model.fit(x, x, epochs=epochs, batch_size=batch_size, verbose=verbose, callbacks=callbacks)
    pre["threshold"] = float(window_errors(x, model.predict(x, verbose=0)).max())
    pre["architecture"] = arch
    model.preprocessing = pre
    return model


def _point_rule(rule: str) -> str:
    if rule not in POINT_RULES:
        raise ValueError(f"point_rule must be one of {', '.join(POINT_RULES)}, got {rule!r}")
    return rule


def score_series(model, values: np.ndarray) -> Scores:
    """Score a series (points, channels) with a detector made by :func:`fit_detector`."""
    pre = model.preprocessing or {}
    if pre.get("kind") != "series":
        raise ValueError("the model is not an anomaly detector (no series preprocessing)")
    values = _check_values(values, pre["columns"])
    x = series_windows(values, pre)
    errors = window_errors(x, model.predict(x, verbose=0))
    rule = pre.get("point_rule", "max")
    points = point_scores(errors, len(values), pre["window"], pre["stride"], rule)
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
    from .report.plots import figure, png_bytes
    from .saving import atomic_write_bytes

    x = np.arange(len(values)) + first_index
    fig = figure(12, 5.5)
    top = fig.add_subplot(2, 1, 1)
    bottom = fig.add_subplot(2, 1, 2, sharex=top)
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
    atomic_write_bytes(path, png_bytes(fig))
