"""Model sweeps: one training per grid point (and cross-validation fold), each a Dask task.

Every training gets its own seed, derived from a base seed and the point's values (not its
position, so adding a value to the grid leaves the other points' seeds alone), and runs with
one Numba/BLAS thread, so a training gives the same weights on any worker, in any order, and
in this process (``client=None`` runs the same tasks one by one here).
"""

from __future__ import annotations

import copy
import itertools
import json
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._worker import limit_threads

#: the values a grid may vary: the optimizer's learning rate and name, and fit's settings
GRID_KEYS = ("learning_rate", "batch_size", "epochs", "optimizer")


def _value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """``["learning_rate=1e-3,3e-4", "batch_size=32,64"]`` as ``{name: [values]}``.

    >>> parse_grid(["learning_rate=1e-3,3e-4", "batch_size=32,64"])
    {'learning_rate': [0.001, 0.0003], 'batch_size': [32, 64]}
    """
    grid: dict[str, list] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise ValueError(f"--grid {item}: write NAME=V1,V2,...")
        if name not in GRID_KEYS:
            raise ValueError(f"--grid {item}: unknown setting {name!r}; use {', '.join(GRID_KEYS)}")
        if name in grid:
            raise ValueError(f"--grid {name} is given twice")
        parsed = [_value(v.strip()) for v in values.split(",") if v.strip()]
        if name in ("batch_size", "epochs") and not all(
            isinstance(v, int) and v >= 1 for v in parsed
        ):
            raise ValueError(f"--grid {item}: {name} takes positive whole numbers")
        if name == "learning_rate" and not all(
            isinstance(v, (int, float)) and v > 0 for v in parsed
        ):
            raise ValueError(f"--grid {item}: learning_rate takes positive numbers")
        grid[name] = parsed
    return grid


def grid_points(grid: dict[str, list]) -> list[dict]:
    """Every combination, the last setting varying fastest.

    >>> grid_points({"learning_rate": [0.1, 0.01], "batch_size": [32]})
    [{'learning_rate': 0.1, 'batch_size': 32}, {'learning_rate': 0.01, 'batch_size': 32}]
    """
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*grid.values())]


def point_seed(base_seed: int, point: dict, fold: int | None = None) -> int:
    """The seed of one training: from the base seed, the point's values and the fold.

    >>> point_seed(0, {"learning_rate": 0.001}) == point_seed(0, {"learning_rate": 0.001})
    True
    >>> point_seed(0, {"learning_rate": 0.001}) == point_seed(1, {"learning_rate": 0.001})
    False
    """
    digest = zlib.crc32(json.dumps(point, sort_keys=True).encode())
    entropy = [int(base_seed), digest, 0 if fold is None else fold + 1]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _configure(spec: dict, point: dict, epochs: int | None) -> tuple[dict, dict]:
    """(the spec with the point's optimizer settings, fit's epochs and batch size)."""
    spec = copy.deepcopy(spec)
    compile_args = spec.setdefault("compile", {})
    optimizer = point.get("optimizer", compile_args.get("optimizer", "rmsprop"))
    if "learning_rate" in point:
        if isinstance(optimizer, str):
            optimizer = {"class_name": optimizer}
        optimizer = {**optimizer, "learning_rate": float(point["learning_rate"])}
    compile_args["optimizer"] = optimizer
    fit = dict(spec.get("fit") or {})
    return spec, {
        "epochs": int(point.get("epochs", epochs or fit.get("epochs", 1))),
        "batch_size": int(point.get("batch_size", fit.get("batch_size", 32))),
    }


_data_cache: dict = {}


def _dataset(name: str, args: dict):
    """A worker keeps the last data set it prepared: the grid's tasks all use the same one."""
    from .. import zoo

    key = (name, json.dumps(args, sort_keys=True))
    if key not in _data_cache:
        _data_cache.clear()
        _data_cache[key] = zoo.load_data(name, args)
    return _data_cache[key]


def _fold_mask(y: np.ndarray, folds: int, fold: int, by_class: bool) -> np.ndarray:
    """Rows of ``fold``: per class (in row order) every ``folds``-th row, or plain row % folds."""
    if not by_class:
        return np.arange(len(y)) % folds == fold
    from ..datasets.splits import class_labels

    labels = class_labels(y)
    rank = np.zeros(len(y), np.int64)
    for c in np.unique(labels):
        where = labels == c
        rank[where] = np.arange(int(where.sum()))
    return rank % folds == fold


def train_point(
    spec: dict,
    data: str,
    data_args: dict,
    point: dict,
    seed: int,
    fold: int | None = None,
    folds: int = 0,
    epochs: int | None = None,
    threads: int = 1,
    keep_model: bool = False,
) -> dict:
    """Train one grid point (on all training rows, or all but one fold) and evaluate it (on
    the held-out fold, else on the test rows); a Dask task, or a plain call.

    Returns the point, fold, seed, metrics, fit seconds and, with ``keep_model``, the model's
    ``.edgemine`` bytes.

    >>> row = train_point(tiny_spec, "mnist", {}, {"learning_rate": 0.01}, seed=1)  # doctest: +SKIP
    """
    from .. import zoo
    from ..saving import model_to_bytes
    from ..utils import set_random_seed

    limit_threads(threads)
    set_random_seed(seed)  # before the model is built, as ``edgemine train --seed``
    spec, fit_args = _configure(spec, point, epochs)
    d = _dataset(data, data_args)
    if d.x_train is None:
        raise ValueError(f"{data}: holds no x_train/y_train to train on")
    # as ``edgemine train``: the data gives the number of classes and the input shape
    model = zoo.build_model(spec, num_classes=len(d.class_names) if d.class_names else None)
    if not model.built:
        model.build((None, *d.x_train.shape[1:]))
    if d.preprocessing and model.preprocessing is None:
        model.preprocessing = d.preprocessing
    if d.class_names and model.class_names is None:
        from ..cli.train import _class_names_for

        model.class_names = _class_names_for(model, d.class_names)
    one_hot = spec.get("one_hot")
    x, y = d.x_train, zoo.targets_for(model, d.y_train, one_hot)
    if fold is not None:
        held = _fold_mask(d.y_train, folds, fold, model.loss.name.endswith("crossentropy"))
        evaluate_on = (x[held], y[held])
        x, y = x[~held], y[~held]
    elif d.x_test is not None:
        evaluate_on = (d.x_test, zoo.targets_for(model, d.y_test, one_hot))
    else:
        evaluate_on = (x, y)
    t0 = time.perf_counter()
    model.fit(x, y, verbose=0, **fit_args)
    fit_s = time.perf_counter() - t0
    metrics = model.evaluate(*evaluate_on, verbose=0, return_dict=True)
    row = {"point": point, "fold": fold, "seed": seed, "metrics": metrics, "fit_s": fit_s}
    if keep_model:
        row["model"] = model_to_bytes(model)
    return row


@dataclass
class SweepResult:
    """One row per grid point (metrics averaged over folds), the best row, its model's bytes."""

    rows: list[dict]
    metric: str
    best: int
    model: bytes
    trainings: list[dict] = field(default_factory=list)

    def table(self) -> str:
        """The rows as an aligned text table, the best marked with ``*``."""
        keys = list(self.rows[0]["point"]) if self.rows else []
        names = list(self.rows[0]["metrics"]) if self.rows else []
        head = ["", "#", *keys, *names, "fit_s"]
        lines = [head]
        for i, r in enumerate(self.rows):
            lines.append(
                [
                    "*" if i == self.best else "",
                    str(i),
                    *[
                        f"{r['point'][k]:g}"
                        if isinstance(r["point"][k], float)
                        else str(r["point"][k])
                        for k in keys
                    ],
                    *[f"{r['metrics'][m]:.4f}" for m in names],
                    f"{r['fit_s']:.1f}",
                ]
            )
        widths = [max(len(line[j]) for line in lines) for j in range(len(head))]
        return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)

    def write_csv(self, path: str | Path) -> None:
        """``results.csv``: point index, settings, metrics, summed fit seconds, seeds."""
        import csv
        import io

        from ..saving import atomic_write_bytes

        keys = list(self.rows[0]["point"])
        names = list(self.rows[0]["metrics"])
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["point", *keys, *names, "fit_s", "seeds", "best"])
        for i, r in enumerate(self.rows):
            w.writerow(
                [
                    i,
                    *[r["point"][k] for k in keys],
                    *[repr(float(r["metrics"][m])) for m in names],
                    f"{r['fit_s']:.3f}",
                    " ".join(map(str, r["seeds"])),
                    int(i == self.best),
                ]
            )
        atomic_write_bytes(path, buf.getvalue().encode())


def _summarise(trainings: list[dict], points: list[dict], prefix: str) -> list[dict]:
    rows = []
    for point in points:
        mine = [t for t in trainings if t["point"] == point]
        names = list(mine[0]["metrics"])
        rows.append(
            {
                "point": point,
                "metrics": {
                    f"{prefix}_{m}": float(np.mean([t["metrics"][m] for t in mine])) for m in names
                },
                "fit_s": float(sum(t["fit_s"] for t in mine)),
                "seeds": [t["seed"] for t in mine],
            }
        )
    return rows


def _pick(rows: list[dict], metric: str | None) -> tuple[str, int]:
    names = list(rows[0]["metrics"])
    if metric is None:
        metric = next((m for m in names if m.endswith("_accuracy")), names[0])
    elif metric not in names:
        metric = next((m for m in names if m.endswith(f"_{metric}")), metric)
    if metric not in names:
        raise ValueError(f"--metric {metric}: the sweep measures {', '.join(names)}")
    values = [r["metrics"][metric] for r in rows]
    lower_is_better = metric.endswith("loss") or metric.endswith("error")
    return metric, int(np.argmin(values) if lower_is_better else np.argmax(values))


def sweep(
    spec: dict,
    grid: dict[str, list],
    client=None,
    data: str | None = None,
    folds: int = 0,
    epochs: int | None = None,
    seed: int = 0,
    threads: int = 1,
    metric: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Train ``spec`` at every grid point (``folds`` >= 2: once per fold, scored on the held-out
    fold, then the best point again on all training rows) on ``client``'s cluster, or here one
    by one when ``client`` is None; rank by ``metric`` (default: accuracy, else loss).

    Example:
        >>> from edgemine import zoo
        >>> result = sweep(zoo.load_spec("seed_cnn"), {"learning_rate": [1e-3, 3e-4]},
        ...                client, epochs=1)  # doctest: +SKIP
        >>> print(result.table())  # doctest: +SKIP
    """
    if folds == 1 or folds < 0:
        raise ValueError(f"folds must be 0 (no cross-validation) or at least 2, got {folds}")
    data_name, data_args = (data, {}) if data else (spec.get("dataset"), spec.get("dataset_args"))
    if not data_name:
        raise ValueError("the spec names no data set: pass data (a bundled name, a file or folder)")
    if Path(data_name).exists():
        data_name = str(Path(data_name).resolve())  # workers may run in another folder
    data_args = dict(data_args or {})
    points = grid_points(grid) or [{}]
    jobs = [
        dict(point=p, fold=f, seed=point_seed(seed, p, f), keep_model=not folds)
        for p in points
        for f in (range(folds) if folds else [None])
    ]
    common = dict(spec=spec, data=data_name, data_args=data_args, folds=folds, epochs=epochs)
    trainings = _run(client, [{**common, **j, "threads": threads} for j in jobs], progress)
    rows = _summarise(trainings, points, "cv" if folds else "test")
    metric, best = _pick(rows, metric)
    if folds:
        final = _run(
            client,
            [
                {
                    **common,
                    "point": points[best],
                    "fold": None,
                    "seed": point_seed(seed, points[best]),
                    "keep_model": True,
                    "threads": threads,
                }
            ],
            None,
        )[0]
        model = final["model"]
    else:
        model = next(t["model"] for t in trainings if t["point"] == points[best])
    for t in trainings:
        t.pop("model", None)
    return SweepResult(rows, metric, best, model, trainings)


def _run(client, calls: list[dict], progress) -> list[dict]:
    """``train_point`` for each call, as Dask tasks (results in call order) or one by one."""
    if client is None:
        out = []
        for i, kwargs in enumerate(calls, 1):
            out.append(train_point(**kwargs))
            if progress is not None:
                progress(i, len(calls))
        return out
    from distributed import as_completed

    futures = [client.submit(train_point, **kwargs, pure=False, retries=1) for kwargs in calls]
    position = {f.key: i for i, f in enumerate(futures)}
    out: list = [None] * len(calls)
    for done, fut in enumerate(as_completed(futures), 1):
        i = position[fut.key]
        try:
            out[i] = fut.result()
        except Exception as e:
            client.cancel(futures)
            point = calls[i]["point"]
            fold = "" if calls[i]["fold"] is None else f", fold {calls[i]['fold']}"
            raise RuntimeError(f"training {point}{fold} failed: {e}") from None
        if progress is not None:
            progress(done, len(calls))
    return out
