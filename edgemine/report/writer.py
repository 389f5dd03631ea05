"""Writing an evaluation report folder: metrics.json, the pictures and report.html."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from . import plots
from .metrics import classification_report, labels_as_classes, scores_and_predictions

MAX_MISCLASSIFIED = 24


def require_matplotlib() -> None:
    """Raise ImportError with the one-line install hint when matplotlib is missing (before
    any work that would be lost).

    >>> require_matplotlib()  # matplotlib is installed here
    """
    plots.figure(1, 1)


def _worst(y_true, y_score, class_names, images):
    """The misclassified images, the least probable true class first."""
    score, y_pred, _ = scores_and_predictions(y_score)
    wrong = np.flatnonzero(y_pred != y_true)
    p_true = score[np.arange(len(score)), y_true]
    pick = wrong[np.argsort(p_true[wrong], kind="stable")][:MAX_MISCLASSIFIED]
    shown = np.asarray(images[pick], dtype=np.float64)
    lo, hi = shown.min(initial=0.0), shown.max(initial=1.0)
    if lo < 0 or hi > 1:  # not 0..1 pixels: stretch to show them
        shown = (shown - lo) / max(hi - lo, 1e-12)
    names = [class_names[c] for c in y_true[pick]], [class_names[c] for c in y_pred[pick]]
    return shown, *names, p_true[pick]


def write_report(
    directory: str | os.PathLike,
    y_true,
    y_score,
    class_names: list[str] | None = None,
    history: dict | None = None,
    images: np.ndarray | None = None,
    title: str = "Evaluation report",
) -> dict:
    """Write ``metrics.json``, ``confusion_matrix.png``, ``history.png`` (when a training
    history is given), ``misclassified.png`` (when ``images`` (n, H, W, C) are given and some
    are misclassified) and ``report.html`` into ``directory``; returns the report (see
    :func:`classification_report`) with ``files``, the names written.

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> r = write_report(out, [0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], ["cat", "dog"])
    >>> r["files"]
    ['metrics.json', 'confusion_matrix.png', 'report.html']
    """
    from ..saving.files import atomic_write_bytes  # imports the engine: only when writing

    require_matplotlib()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    report = classification_report(y_true, y_score, class_names)
    score, _, k = scores_and_predictions(y_score)
    names = [str(c) for c in (class_names or range(k))]
    pictures = {"confusion_matrix.png": ("Confusion matrix", plots.confusion_matrix_png(report["confusion_matrix"], report["class_names"]))}  # fmt: skip
    if history and any(len(v) for v in history.values()):
        pictures["history.png"] = ("Training history", plots.history_png(history))
    if images is not None:
        labels = labels_as_classes(y_true, len(score))
        worst = _worst(labels, y_score, names, images)
        if len(worst[0]):
            pictures["misclassified.png"] = ("Misclassified", plots.misclassified_png(*worst))
    atomic_write_bytes(out / "metrics.json", (json.dumps(report, indent=1) + "\n").encode())
    for name, (_, png) in pictures.items():
        atomic_write_bytes(out / name, png)
    notes = [] if "history.png" in pictures else ["The model file holds no training history."]
    page = _html(title, report, {n: caption for n, (caption, _) in pictures.items()}, notes)
    atomic_write_bytes(out / "report.html", page.encode("utf-8"))
    return {**report, "files": ["metrics.json", *pictures, "report.html"]}


def _table(head: list[str], rows: list[list]) -> str:
    def cell(v, tag):
        text = f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))
        return f"<{tag}>{text}</{tag}>"

    lines = ["<table>", "<tr>" + "".join(cell(h, "th") for h in head) + "</tr>"]
    lines += ["<tr>" + "".join(cell(v, "td") for v in row) + "</tr>" for row in rows]
    return "\n".join([*lines, "</table>"])


def _html(title: str, report: dict, pictures: dict[str, str], notes: list[str]) -> str:
    per = report["per_class"]
    rows = [[n, m["precision"], m["recall"], m["f1"], m["support"]] for n, m in per.items()]
    for label, key in (("macro avg", "macro_avg"), ("weighted avg", "weighted_avg")):
        m = report[key]
        rows.append([label, m["precision"], m["recall"], m["f1"], m["support"]])
    auc = report["roc_auc"]
    summary = [
        ["samples", report["n_samples"]],
        ["accuracy", report["accuracy"]],
        ["ROC AUC", "n/a (one class)" if auc is None else auc],
    ]
    cm_rows = [[n, *r] for n, r in zip(report["class_names"], report["confusion_matrix"])]
    parts = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "img{max-width:100%;border:1px solid #eee}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _table(["", "value"], summary),
        "<h2>Per class</h2>",
        _table(["class", "precision", "recall", "f1", "support"], rows),
        "<h2>Confusion matrix (rows true, columns predicted)</h2>",
        _table(["true \\ predicted", *report["class_names"]], cm_rows),
    ]
    for name, caption in pictures.items():
        parts += [f"<h2>{html.escape(caption)}</h2>", f'<img src="{name}" alt="{caption}">']
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
