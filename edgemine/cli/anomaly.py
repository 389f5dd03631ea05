"""``edgemine anomaly fit`` and ``edgemine anomaly score``: an autoencoder on a sensor series.

Examples::

    edgemine anomaly fit kdd_tsad_135 -o heart.edgemine        # the bundled set's TRAIN part
    edgemine anomaly fit kdd_tsad_135 --model dense -o heart_dense.edgemine
    edgemine anomaly score heart.edgemine kdd_tsad_135 -o scores.csv --report heart_report
    edgemine anomaly fit normal.csv --time-column t -o pump.edgemine
    edgemine anomaly score pump.edgemine today.csv -o scores.csv
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from ..anomaly import ARCHITECTURES
from ._click import Command, check_writable

_TIME_NAMES = ("timestamp", "time", "date", "datetime")
_LABEL_NAMES = ("is_anomaly", "anomaly", "label")
_LABELS = {"lstm": "LSTM", "dense": "dense", "conv1d": "Conv1D"}


@dataclass
class SeriesData:
    values: np.ndarray  # (points, channels)
    columns: list[str]
    labels: np.ndarray | None  # (points,) bool
    first_index: int  # the index of the first point in the whole series


def _bundled(split: str) -> SeriesData:
    from ..datasets import kdd_tsad_135 as kdd

    values, flags = kdd.load_series()
    cut = kdd.TRAIN_POINTS
    if split == "train":
        return SeriesData(values[:cut, None], ["value"], flags[:cut], 0)
    return SeriesData(values[cut:, None], ["value"], flags[cut:], cut)


def read_series(
    data: str, split: str, time_column: str | None, label_column: str | None, columns=None
) -> SeriesData:
    """'kdd_tsad_135' (its TRAIN part to fit, TEST part to score) or a CSV with a header: an
    optional time column and label column (0/1), the rest value columns (or ``columns``)."""
    from ..preprocessing import inputs

    if data == "kdd_tsad_135":
        return _bundled(split)
    if not Path(data).is_file():
        raise click.UsageError(f"{data}: no such file (or use the bundled 'kdd_tsad_135')")
    try:
        header, rows = inputs.read_csv(data)
        time_col = time_column or next((c for c in header if c.lower() in _TIME_NAMES), None)
        label_col = label_column or next((c for c in header if c.lower() in _LABEL_NAMES), None)
        for name, col in (("--time-column", time_column), ("--label-column", label_column)):
            if col is not None and col not in header:
                raise inputs.InputError(f"{Path(data).name} has no column {col!r} ({name})")
        value_cols = (
            list(columns) if columns else [c for c in header if c not in (time_col, label_col)]
        )
        if not value_cols:
            raise inputs.InputError(f"{Path(data).name} has no value column")
        values = inputs.table_values(header, rows, value_cols, Path(data).name)
        labels = None
        if label_col is not None:
            labels = inputs.table_values(header, rows, [label_col], Path(data).name)[:, 0] != 0
    except inputs.InputError as e:
        raise click.UsageError(str(e)) from None
    return SeriesData(values, value_cols, labels, 0)


@click.group("anomaly", cls=click.Group)
def anomaly() -> None:
    """Find anomalies in sensor series with an autoencoder trained on normal data."""


def _series_options(f):
    f = click.option("--label-column", help="A CSV's 0/1 anomaly column (default: is_anomaly).")(f)
    return click.option("--time-column", help="A CSV's time column (default: timestamp/time).")(f)


@anomaly.command("fit", cls=Command)
@click.argument("data")
@click.option("-o", "--output", required=True, type=click.Path(), help="The detector to write.")
@click.option("--window", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--model",
    "arch",
    type=click.Choice(ARCHITECTURES),
    default=ARCHITECTURES[0],
    show_default=True,
    help="The autoencoder: lstm (LSTM encoder, RepeatVector, LSTM decoder, TimeDistributed "
    "Dense), dense, or conv1d (Conv1D encoder, Conv1DTranspose decoder; window divisible by 4).",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    help="Training epochs [default: lstm 100, dense 200, conv1d 100].",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--point-rule",
    type=click.Choice(["max", "min"]),
    default="max",
    show_default=True,
    help="A point's score from the windows covering it: the largest (any window flagged flags "
    "it: shared/DATA.md's rule) or the smallest (only when every window is: keras.io's "
    "anomaly example; flags tight ranges).",
)
@_series_options
def fit_cmd(
    data, output, window, stride, arch, epochs, seed, point_rule, time_column, label_column
):
    """Train a detector on DATA's normal points ('kdd_tsad_135': its TRAIN part; a CSV: every
    row). The threshold is the largest training-window reconstruction error."""
    import time

    from ..anomaly import fit_detector

    out = check_writable(output, "-o")
    series = read_series(data, "train", time_column, label_column)
    if series.labels is not None and series.labels.any():
        raise click.UsageError(
            f"{data}: {int(series.labels.sum())} training point(s) are labelled anomalous; "
            "a detector learns from normal data only"
        )
    start = time.perf_counter()
    model = fit_detector(
        series.values,
        series.columns,
        window,
        stride,
        arch,
        epochs,
        seed=seed,
        verbose=0,
        point_rule=point_rule,
    )
    seconds = time.perf_counter() - start
    model.save(out)
    click.echo(
        f"trained a {window}-point {_LABELS[arch]} autoencoder on {len(series.values)} points "
        f"({', '.join(series.columns)}) in {seconds:.1f} s; threshold "
        f"{model.preprocessing['threshold']:.6g}; saved {out}"
    )


@anomaly.command("score", cls=Command)
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.argument("data")
@click.option("-o", "--output", type=click.Path(), help="scores.csv: index,score,flag per point.")
@click.option("--report", type=click.Path(file_okay=False), help="Write metrics and a plot here.")
@_series_options
def score_cmd(model_path, data, output, report, time_column, label_column):
    """Score DATA's points with MODEL ('kdd_tsad_135': its TEST part, points 1200..7500)."""
    from ..anomaly import metrics, score_series
    from ..models import load_model

    out = check_writable(output, "-o") if output else None
    if report:
        from ..report import require_matplotlib

        require_matplotlib()  # before any work: the plot needs it
    model = load_model(model_path, compile=False)
    pre = model.preprocessing or {}
    if pre.get("kind") != "series":
        raise click.UsageError(f"{model_path} is not an anomaly detector (edgemine anomaly fit)")
    series = read_series(data, "test", time_column, label_column, pre["columns"])
    result = score_series(model, series.values)
    flagged = int(result.flags.sum())
    click.echo(
        f"{len(series.values)} points, {flagged} flagged above {result.threshold:.6g} "
        f"(window {result.window}, stride {result.stride})"
    )
    if out:
        _write_scores(out, series.first_index, result)
        click.echo(f"wrote {out}")
    found = None
    if series.labels is not None:
        found = metrics(result, series.labels)
        for part in ("windows", "points"):
            m = found[part]
            click.echo(
                f"{part:8s} precision {m['precision']:.3f} recall {m['recall']:.3f} "
                f"F1 {m['f1']:.3f} ROC-AUC {_auc(m['roc_auc'])} ({m['anomalous']} of {m['n']})"
            )
    if report:
        _write_report(Path(report), series, result, found)
        click.echo(f"wrote {report}/")


def _auc(value) -> str:
    return "n/a (one class)" if value is None else f"{value:.4f}"


def _write_scores(path: Path, first_index: int, result) -> None:
    from ..saving import atomic_write_bytes

    lines = ["index,score,flag"]
    for i, (s, f) in enumerate(zip(result.point_scores, result.flags)):
        lines.append(f"{first_index + i},{s:.9g},{int(f)}")
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _write_report(folder: Path, series: SeriesData, result, found: dict | None) -> None:
    from ..anomaly import plot_scores

    folder.mkdir(parents=True, exist_ok=True)
    if found is not None:
        (folder / "metrics.json").write_text(json.dumps(found, indent=1) + "\n")
    plot_scores(
        folder / "anomaly.png",
        series.values,
        series.columns,
        result,
        series.labels,
        series.first_index,
    )
