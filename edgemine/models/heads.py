"""Per-output training settings, as Keras 3's ``compile`` reads them for a model with several
outputs: a loss, a loss weight, metrics and weighted metrics for each output, given as one
value for every output, a list in output order, or a dict by output name (the name of the
layer that makes the output). Logs name each output's loss ``<output>_loss`` and its metrics
``<output>_<metric>``, as Keras 3 does.

>>> heads = compile_heads(["mse", "categorical_crossentropy"], [0.5, 2.0],
...                       {"cls": ["accuracy"]}, None, ["reg", "cls"])
>>> [(h.name, h.loss.name, h.weight) for h in heads]
[('reg', 'mean_squared_error', 0.5), ('cls', 'categorical_crossentropy', 2.0)]
>>> log_names(heads)
['reg_loss', 'cls_loss', 'cls_accuracy']
"""

from __future__ import annotations

import math

import numpy as np

from .. import losses as losses_mod
from .. import metrics as metrics_mod


class Head:
    """One output's loss, loss weight and metric requests ((display name, kind) pairs)."""

    __slots__ = ("name", "loss", "weight", "plain", "weighted")

    def __init__(self, name, loss, weight: float, plain: list, weighted: list):
        self.name, self.loss, self.weight = name, loss, float(weight)
        self.plain, self.weighted = plain, weighted


def _outputs_text(names: list[str]) -> str:
    return f"{len(names)} outputs ({', '.join(names)})"


def _by_output(value, names: list[str], what: str, partial: bool = False) -> list:
    """``value`` (a list in output order or a dict by output name) as one entry per output;
    a dict may leave outputs out (None) where ``partial``."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        missing = [n for n in names if n not in value]
        if unknown or (missing and not partial):
            raise ValueError(
                f"{what} is a dict with keys {sorted(map(str, value))}, but the model's outputs "
                f"are {names}: give {'some of ' if partial else ''}the output names as keys"
            )
        return [value.get(n) for n in names]
    if len(value) != len(names):
        raise ValueError(
            f"{what} is a list of {len(value)} entries, but the model has "
            f"{_outputs_text(names)}: give one entry per output, or a dict by output name"
        )
    return list(value)


def _losses(loss, names: list[str]) -> list[losses_mod.Loss]:
    if not isinstance(loss, (list, tuple, dict)):
        return [losses_mod.get(loss) for _ in names]  # Keras: one loss for every output
    entries = _by_output(loss, names, "loss")
    for name, entry in zip(names, entries):
        if entry is None:
            raise ValueError(f"loss for output {name!r} is None: edgemine trains every output")
    return [losses_mod.get(entry) for entry in entries]


def _weights(loss_weights, names: list[str]) -> list[float]:
    if loss_weights is None:
        return [1.0] * len(names)
    if isinstance(loss_weights, (int, float, np.number)) and len(names) == 1:
        entries = [loss_weights]
    elif isinstance(loss_weights, (list, tuple, dict)):
        entries = _by_output(loss_weights, names, "loss_weights")
    else:
        raise ValueError(
            f"loss_weights must be a list (one number per output) or a dict by output name, "
            f"got {loss_weights!r}"
        )
    for name, w in zip(names, entries):
        if (
            isinstance(w, bool)
            or not isinstance(w, (int, float, np.number))
            or not math.isfinite(w)
        ):
            raise ValueError(f"loss_weights for output {name!r} must be a finite number, got {w!r}")
    return [float(w) for w in entries]


def _metric_lists(metrics, names: list[str], what: str) -> list[list]:
    """Each output's metric requests: Keras 3 takes a list with one entry per output (a metric,
    a list of them, or None) or a dict by output name, and refuses anything else."""
    if metrics is None:
        return [[] for _ in names]
    if len(names) == 1:
        return [metrics_mod.requests(metrics, what)]
    if not isinstance(metrics, (list, tuple, dict)) or (
        not isinstance(metrics, dict) and len(metrics) != len(names)
    ):
        raise ValueError(
            f"{what} for a model with {_outputs_text(names)} must be a list of {len(names)} "
            f"entries (each a metric, a list of metrics or None, in output order) or a dict by "
            f"output name, as in Keras 3; got {metrics!r}"
        )
    entries = _by_output(metrics, names, what, partial=True)
    return [metrics_mod.requests(e, f"{what}[{n!r}]") for n, e in zip(names, entries)]


def compile_heads(loss, loss_weights, metrics, weighted_metrics, names: list[str]) -> list[Head]:
    """One Head per output named in ``names`` (the output layers' names)."""
    losses = _losses(loss, names)
    weights = _weights(loss_weights, names)
    plain = _metric_lists(metrics, names, "metrics")
    weighted = _metric_lists(weighted_metrics, names, "weighted_metrics")
    heads = [Head(*h) for h in zip(names, losses, weights, plain, weighted)]
    for h in heads:
        for _, kind in h.plain + h.weighted:
            metrics_mod.resolve(kind, h.loss.name, 2)  # validates the name early
    return heads


def log_names(heads: list[Head]) -> list[str]:
    """The log keys besides ``loss`` in the order of evaluate's list (Keras 3: each output's
    loss in output order, then the metrics sorted by name), or, for one output, the metrics in
    compile order."""
    if len(heads) == 1:
        return metrics_mod.unique_names(
            [n for n, _ in heads[0].plain], [n for n, _ in heads[0].weighted]
        )
    return [f"{h.name}_loss" for h in heads] + sorted(metric_keys(heads))


def metric_keys(heads: list[Head]) -> list[str]:
    """The log key of every metric of several outputs, in compile order (plain ones by output,
    then weighted ones by output), made unique as Keras 3's ``CompileMetrics.result`` does."""
    seen: dict[str, int] = {}
    keys = []
    for h in heads:
        for display, _ in h.plain:
            keys.append(_unique(f"{h.name}_{display}", seen))
    for h in heads:
        for display, _ in h.weighted:
            key = f"{h.name}_{display}"
            keys.append(key if key not in seen else _unique(f"{h.name}_weighted_{display}", seen))
            seen.setdefault(key, 1)
    return keys


def _unique(key: str, seen: dict[str, int]) -> str:
    if key not in seen:
        seen[key] = 1
        return key
    seen[key] += 1
    return f"{key}_{seen[key] - 1}"


def split_targets(y, names: list[str], what: str) -> list:
    """Targets of several outputs, given as a list or tuple in output order or a dict by output
    name, as one entry per output."""
    if isinstance(y, (list, tuple, dict)):
        return _by_output(y, names, what)
    raise ValueError(
        f"the model has {_outputs_text(names)}: give {what} as a list of {len(names)} arrays "
        "(in output order) or a dict by output name"
    )
