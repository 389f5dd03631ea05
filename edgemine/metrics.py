"""Metrics with Keras 3's names, accumulated over an epoch as Keras's trackers do.

A metric is asked for by a name (``"accuracy"``, ``"acc"``, ``"mae"``, ``"MeanSquaredError"``,
...) or an object (``SparseCategoricalAccuracy()``); logs and History use the name exactly as
given, or the object's ``name``, as Keras 3 does. ``'accuracy'``/``'acc'`` become the accuracy
that fits the loss and output width.

>>> requests(["acc", MeanAbsoluteError()], "metrics")
[('acc', 'acc'), ('mean_absolute_error', 'mae')]
"""

from __future__ import annotations

import numpy as np

KNOWN = (
    "accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "binary_accuracy",
    "mse",
    "mae",
)
#: Keras's other spellings of the same metrics (its class names, upper-case aliases)
_ALIASES = {
    "acc": "accuracy",
    "mean_squared_error": "mse",
    "meansquarederror": "mse",
    "mean_absolute_error": "mae",
    "meanabsoluteerror": "mae",
    "categoricalaccuracy": "categorical_accuracy",
    "sparsecategoricalaccuracy": "sparse_categorical_accuracy",
    "binaryaccuracy": "binary_accuracy",
}


class Metric:
    """A metric object as ``compile(metrics=[...])`` takes it: a kind and a display name."""

    kind = ""
    default_name = ""

    def __init__(self, name: str | None = None):
        self.name = self.default_name if name is None else str(name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class BinaryAccuracy(Metric):
    """Share of outputs on the right side of 0.5."""

    kind = default_name = "binary_accuracy"


class CategoricalAccuracy(Metric):
    """Share of samples whose arg-max matches the one-hot target's."""

    kind = default_name = "categorical_accuracy"


class SparseCategoricalAccuracy(Metric):
    """Share of samples whose arg-max is the integer label."""

    kind = default_name = "sparse_categorical_accuracy"


class MeanSquaredError(Metric):
    """Mean of the squared differences."""

    kind, default_name = "mse", "mean_squared_error"


class MeanAbsoluteError(Metric):
    """Mean of the absolute differences."""

    kind, default_name = "mae", "mean_absolute_error"


def requests(metrics, what: str) -> list[tuple[str, str]]:
    """(display name, kind) of each metric asked for in ``compile(metrics=...)``."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, Metric)):
        metrics = [metrics]
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"{what} must be a list of metric names or objects, got {metrics!r}")
    out = []
    for m in metrics:
        if isinstance(m, Metric):
            out.append((m.name, m.kind))
        elif isinstance(m, str):
            out.append((m, m))
        else:
            raise TypeError(
                f"{what} holds {m!r}: give metric names ('accuracy', 'mae', ...) or "
                "edgemine.metrics objects"
            )
    return out


def unique_names(plain: list[str], weighted: list[str]) -> list[str]:
    """Log keys for ``metrics`` then ``weighted_metrics``, as Keras 3 makes them unique: a
    repeated plain name gets ``_1``, ``_2``...; a weighted one first the prefix ``weighted_``.

    >>> unique_names(["accuracy"], ["accuracy", "mae"])
    ['accuracy', 'weighted_accuracy', 'mae']
    """
    seen: dict[str, int] = {}
    out = []
    for name in plain:
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name] - 1}"
        else:
            seen[name] = 1
        out.append(name)
    for name in weighted:
        if name in seen:
            name = f"weighted_{name}"
            if name in seen:
                seen[name] += 1
                name = f"{name}_{seen[name] - 1}"
        seen.setdefault(name, 1)
        out.append(name)
    return out


def resolve(name: str, loss_name: str, output_dim: int) -> str:
    """Map a requested kind to a concrete metric ('accuracy'/'acc' by the loss and output).

    >>> resolve("accuracy", "sparse_categorical_crossentropy", 10)
    'sparse_categorical_accuracy'
    """
    if not isinstance(name, str):
        raise TypeError(f"metrics must be names, got {name!r}")
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key == "accuracy":
        if loss_name == "binary_crossentropy" or output_dim == 1:
            return "binary_accuracy"
        if loss_name == "sparse_categorical_crossentropy":
            return "sparse_categorical_accuracy"
        return "categorical_accuracy"
    if key not in KNOWN:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(KNOWN)}")
    return key


def batch_values(metric: str, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-sample metric values, a sequence output's averaged over time (as Keras reduces
    them to samples)."""
    n = len(y_pred)
    if metric == "categorical_accuracy":
        hits = y_true.argmax(-1) == y_pred.argmax(-1)
    elif metric == "sparse_categorical_accuracy":
        hits = y_true.reshape(n, -1) == y_pred.argmax(-1).reshape(n, -1)
    elif metric == "binary_accuracy":
        hits = (y_pred > 0.5) == (y_true > 0.5)
    else:
        d = (y_pred - y_true).reshape(n, -1)
        return (d * d).mean(-1) if metric == "mse" else np.abs(d).mean(-1)
    return hits.astype(np.float64).reshape(n, -1).mean(-1)


class Tally:
    """Running means of an epoch's loss and metrics, as Keras 3's trackers keep them: the
    loss is the sum of the samples' (weighted) losses over the number of samples; a metric
    is the mean of its values, weighted by the sample weights for a weighted metric. The first
    ``parts`` names (a model with several outputs: each output's loss before its loss weight)
    reduce as the loss does.

    >>> t = Tally(["mae"], [False])
    >>> t.add(np.array([1.0, 3.0]), [np.array([0.5, 0.5])], np.array([1.0, 0.0]))
    >>> t.logs()
    {'loss': 0.5, 'mae': 0.5}
    """

    def __init__(self, names: list[str], weighted: list[bool], parts: int = 0):
        self.names, self.weighted, self.parts = list(names), list(weighted), parts
        self.loss_sum, self.samples = 0.0, 0
        self.sums = [0.0] * len(names)
        self.counts = [0.0] * len(names)

    def add(self, per: np.ndarray, values: list[np.ndarray], w: np.ndarray | None) -> None:
        n = len(per)
        self.loss_sum += float(per.sum() if w is None else (per * w).sum())
        self.samples += n
        for k, v in enumerate(values):
            if k < self.parts:
                self.sums[k] += float(v.sum() if w is None else (v * w).sum())
                self.counts[k] += n
            elif self.weighted[k] and w is not None:
                self.sums[k] += float((v * w).sum())
                self.counts[k] += float(w.sum())
            else:
                self.sums[k] += float(v.sum())
                self.counts[k] += n

    def logs(self) -> dict[str, float]:
        """{'loss': ..., metric: ...}, keys in Keras 3's order (sorted)."""
        out = {"loss": self.loss_sum / self.samples if self.samples else 0.0}
        for name, total, count in zip(self.names, self.sums, self.counts):
            out[name] = total / count if count else 0.0
        return dict(sorted(out.items()))

    def values(self) -> list[float]:
        """[loss, *metrics] in compile order: ``evaluate``'s list."""
        logs = self.logs()
        return [logs["loss"], *(logs[name] for name in self.names)]
